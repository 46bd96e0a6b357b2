"""How OctoAI's image server judges a generation body: FastAPI 422 ``detail`` entries.

Written from the OpenAPI document OctoAI publishes (it ships in the package beside the client and is
read here as a plain file), never from the client's own validation: the emulator is a witness, so a
client that validates wrongly meets a server that disagrees. The messages and ``type`` codes are
pydantic 2's, which is what a FastAPI server answers: ``Field required`` / ``missing``,
``Input should be less than or equal to 16`` / ``less_than_equal``, and so on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

#: OctoAI's published OpenAPI description of the image engines (the same file the client reads).
DOCUMENT = Path(__file__).resolve().parents[1] / "clients" / "schemas" / "octoai_image_gen.openapi.json"
#: Engines the contract lists under ``/generate/`` that the document does not describe.
UNDESCRIBED_ENGINES = {"sd": "ImageGenerationRequest"}

_TYPES: dict[str, tuple[type | tuple[type, ...], str, str]] = {
    # JSON type -> (Python types, pydantic error type, message)
    "string": (str, "string_type", "Input should be a valid string"),
    "integer": (int, "int_type", "Input should be a valid integer"),
    "number": ((int, float), "float_type", "Input should be a valid number"),
    "boolean": (bool, "bool_type", "Input should be a valid boolean"),
    "array": (list, "list_type", "Input should be a valid list"),
    "object": (dict, "dict_type", "Input should be a valid dictionary"),
}
_BOUNDS: dict[str, tuple[str, str, Callable[[float, float], bool]]] = {
    "maximum": ("less_than_equal", "less than or equal to", lambda v, b: v <= b),
    "exclusiveMaximum": ("less_than", "less than", lambda v, b: v < b),
    "minimum": ("greater_than_equal", "greater than or equal to", lambda v, b: v >= b),
    "exclusiveMinimum": ("greater_than", "greater than", lambda v, b: v > b),
}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text("utf-8"))
    return loaded


@cache
def engines() -> dict[str, str]:
    """Engine -> the name of its request schema, from the document's ``/generate/{engine}`` paths."""
    out = dict(UNDESCRIBED_ENGINES)
    for path, item in document()["paths"].items():
        if path.startswith("/generate/"):
            ref = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            out[path.removeprefix("/generate/")] = ref.rsplit("/", 1)[-1]
    return out


def detail_for(engine: str, body: Any) -> list[dict[str, Any]]:
    """The 422 ``detail`` a FastAPI server gives for ``body``; empty when the body is accepted."""
    schema = {"$ref": f"#/components/schemas/{engines()[engine]}"}
    return _check(schema, body, ["body"])


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _error(loc: list[Any], type_: str, msg: str, value: Any) -> dict[str, Any]:
    return {"type": type_, "loc": loc, "msg": msg, "input": value}


def _check(schema: dict[str, Any], value: Any, loc: list[Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema)
    if "anyOf" in schema:
        # pydantic reads ``X | None`` as "X, or null": null passes, anything else is judged as X.
        branches = [_resolve(b) for b in schema["anyOf"]]
        if value is None and any(b.get("type") == "null" for b in branches):
            return []
        judged = [_check(b, value, loc) for b in branches if b.get("type") != "null"]
        return [] if any(not errors for errors in judged) else (judged[0] if judged else [])
    if "allOf" in schema:
        return [error for part in schema["allOf"] for error in _check(part, value, loc)]
    if "enum" in schema:
        choices = schema["enum"]
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            return [_error(loc, "enum", f"Input should be {listed}", value)]
        return []
    kind = schema.get("type")
    if kind in _TYPES:
        python_types, type_, msg = _TYPES[kind]
        bool_as_number = isinstance(value, bool) and kind in ("integer", "number")
        if not isinstance(value, python_types) or bool_as_number:
            return [_error(loc, type_, msg, value)]
    errors: list[dict[str, Any]] = []
    for keyword, (type_, words, holds) in _BOUNDS.items():
        if keyword in schema and isinstance(value, int | float) and not holds(value, schema[keyword]):
            errors.append(_error(loc, type_, f"Input should be {words} {schema[keyword]:g}", value))
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        errors.append(
            _error(
                loc, "string_too_long", f"String should have at most {schema['maxLength']} characters", value
            )
        )
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _check(schema["items"], item, [*loc, index])
    if isinstance(value, dict) and kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(_error([*loc, name], "missing", "Field required", value))
        for name, item in value.items():
            if name in properties:
                errors += _check(properties[name], item, [*loc, name])
            elif schema.get("additionalProperties") is False:
                errors.append(_error([*loc, name], "extra_forbidden", "Extra inputs are not permitted", item))
    return errors
