"""OctoAI's OpenAPI description of the image engines, and checks of a body against it.

The description ships with this package (as OctoAI publishes it), so a bad field is reported with
FastAPI's own ``detail`` entries before anything is sent or billed. The emulator answers 422 with
exactly these entries (it keeps its own reader of the file: it imports nothing from ``clients``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

#: OctoAI's OpenAPI description of the image engines (as OctoAI publishes it).
SCHEMA_RESOURCE = "schemas/octoai_image_gen.openapi.json"
#: Engines OctoAI's documents list that the OpenAPI file has no path for (``sd``: SD 1.5, which the file's
#: size notes mention); they take the image request and answer the image response.
EXTRA_IMAGE_ENGINES = ("sd",)
_SCHEMA_URI = "urn:edgeinfer:octoai-image-gen"


@cache
def openapi_document() -> dict[str, Any]:
    """OctoAI's OpenAPI description of the image engines, as shipped with this package."""
    text = resources.files("airflow_provider_edgeinfer.clients").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _component(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


@cache
def image_engines() -> dict[str, tuple[str, str]]:
    """engine -> (request schema, response schema), from the OpenAPI file's ``/generate/*`` paths."""
    out: dict[str, tuple[str, str]] = {}
    for path, item in openapi_document()["paths"].items():
        if not path.startswith("/generate/"):
            continue
        post = item["post"]
        request = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        response = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        out[path.removeprefix("/generate/")] = (_component(request), _component(response))
    for engine in EXTRA_IMAGE_ENGINES:
        out.setdefault(engine, ("ImageGenerationRequest", "ImageGenerationResponse"))
    return out


@cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(openapi_document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_SCHEMA_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{_SCHEMA_URI}#/components/schemas/{schema_name}"}, registry=registry
    )


_ERROR_TYPES = {
    "type": "type_error",
    "maximum": "less_than_equal",
    "exclusiveMaximum": "less_than",
    "minimum": "greater_than_equal",
    "exclusiveMinimum": "greater_than",
    "maxLength": "string_too_long",
    "minLength": "string_too_short",
    "enum": "enum",
    "anyOf": "value_error",
}


def _shown(value: Any) -> str:
    # Numbers and short words are quoted to help; long strings may be prompts or base64 images.
    if (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= 40)
    ):
        return f" (got {value!r})"
    return f" (got {type(value).__name__})"


def _schema_message(validator: str, expected: Any, value: Any) -> str:
    if validator == "type":
        return f"must be of type {expected}{_shown(value)}"
    if validator in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
        sign = {"maximum": "<=", "minimum": ">=", "exclusiveMaximum": "<", "exclusiveMinimum": ">"}[validator]
        return f"must be {sign} {expected:g}{_shown(value)}"
    if validator == "maxLength":
        return f"must be at most {expected} characters"
    if validator == "enum":
        choices = ", ".join(str(c) for c in expected)
        return f"must be one of {choices[:300]}{_shown(value)}"
    if validator == "anyOf":
        kinds = sorted({str(s.get("type", "value")) for s in expected if isinstance(s, dict)})
        return f"must be {' or '.join(kinds)}{_shown(value)}"
    return f"is invalid ({validator})"


def schema_errors(engine: str, body: Any) -> list[dict[str, Any]]:
    """FastAPI-style ``detail`` entries (``loc``, ``msg``, ``type``) for ``body`` sent to ``engine``.

    Empty for a valid body or an engine the OpenAPI file does not describe (the vendor judges it).
    Shared with the emulator, which answers 422 with exactly these entries.
    """
    schemas = image_engines().get(engine)
    if schemas is None:
        return []
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    out: list[dict[str, Any]] = []
    errors = sorted(_validator(schemas[0]).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        loc: list[Any] = ["body", *error.absolute_path]
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            out += [{"loc": [*loc, name], "msg": "Field required", "type": "missing"} for name in missing]
        elif error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            extra = sorted(name for name in error.instance if name not in known)
            out += [
                {"loc": [*loc, name], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
                for name in extra
            ]
        else:
            msg = _schema_message(str(error.validator), error.validator_value, error.instance)
            out.append(
                {"loc": loc, "msg": msg, "type": _ERROR_TYPES.get(str(error.validator), "value_error")}
            )
    return out


def describe_detail(detail: Sequence[Any]) -> str:
    """``"steps: must be <= 200 (got 500); prompt: Field required"`` from FastAPI ``detail`` entries."""
    parts = []
    for entry in detail[:5]:
        if not isinstance(entry, dict):
            parts.append(str(entry))
            continue
        loc = [str(p) for p in entry.get("loc", []) if p != "body"]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {entry.get('msg', 'invalid')}")
    more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
    return "; ".join(parts) + more
