"""Strict mode: the emulator refuses whatever the vendor contracts do not allow.

By default the emulator is as forgiving as a real server may be (unknown body keys and query
parameters are ignored). In strict mode (``--strict``, ``EDGEINFER_EMULATOR_STRICT=1`` for the
pytest plugin, or ``state.strict = True``) every request is held to the contract: a body key the
contract does not list, a value of the wrong JSON type or a query parameter the endpoint does not
take is refused with 400 (422 for OctoAI) in the vendor's own error shape, naming each problem. So a
client that drifts from the contract fails in tests instead of against the live API.

The shapes are written here from the vendor contracts, never from the clients' models: the emulator
is a witness of the contract, not a mirror of the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from airflow_provider_edgeinfer.emulator.common import HTTPError
from airflow_provider_edgeinfer.emulator.state import EmulatorState

#: A problem: where (``["body", "input", "prompt"]``) and what is wrong.
Problem = tuple[list[Any], str]

_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class Shape:
    """What a JSON value may be: its kinds; for an object its fields (closed unless ``fields`` is
    None), those required; for an array the shape of its items."""

    kinds: tuple[str, ...]
    fields: Mapping[str, Shape] | None = None
    required: frozenset[str] = field(default_factory=frozenset)
    items: Shape | None = None

    def nullable(self) -> Shape:
        return Shape((*self.kinds, "null"), self.fields, self.required, self.items)


ANY = Shape(("any",))
STRING = Shape(("string",))
INTEGER = Shape(("integer",))
NUMBER = Shape(("number",))
BOOLEAN = Shape(("boolean",))
#: An object whose keys the contract leaves open (an OpenAI ``body``, free ``metadata``...).
OPEN_OBJECT = Shape(("object",))


def array(items: Shape = ANY) -> Shape:
    return Shape(("array",), items=items)


def obj(required: Iterable[str] = (), /, **fields: Shape) -> Shape:
    """A closed object of ``fields``; ``required`` names those that must be present."""
    return Shape(("object",), dict(fields), frozenset(required))


#: An OpenAI chat message, as OpenAI documents it (infrai's core and OctoAI's text API follow it).
OPENAI_CHAT_MESSAGE = obj(
    ["role"], role=STRING, content=ANY, name=STRING, tool_calls=array(), tool_call_id=STRING
)


def openai_chat_body(**more: Shape) -> Shape:
    """An OpenAI chat-completion body; ``more`` adds the fields one vendor's contract also names."""
    return obj(
        ["model", "messages"],
        model=STRING,
        messages=array(OPENAI_CHAT_MESSAGE),
        max_tokens=INTEGER,
        max_completion_tokens=INTEGER,
        temperature=NUMBER,
        top_p=NUMBER,
        n=INTEGER,
        stop=ANY,
        stream=BOOLEAN,
        presence_penalty=NUMBER,
        frequency_penalty=NUMBER,
        seed=INTEGER,
        response_format=OPEN_OBJECT,
        user=STRING,
        logit_bias=OPEN_OBJECT,
        tools=array(OPEN_OBJECT),
        tool_choice=ANY,
        **more,
    )


def _kind_ok(value: Any, kinds: tuple[str, ...]) -> bool:
    if "any" in kinds:
        return True
    if value is None:
        return "null" in kinds
    for kind in kinds:
        types = _KINDS.get(kind)
        if types is None:
            continue
        if isinstance(value, bool) and kind != "boolean":
            continue
        if isinstance(value, types):
            return True
    return False


def problems(value: Any, shape: Shape, where: list[Any] | None = None) -> list[Problem]:
    """Every way ``value`` departs from ``shape`` (empty when it conforms)."""
    loc = list(where or ["body"])
    if not _kind_ok(value, shape.kinds):
        expected = " or ".join(k for k in shape.kinds)
        return [(loc, f"must be {expected}, got {_json_kind(value)}")]
    out: list[Problem] = []
    if isinstance(value, dict) and shape.fields is not None:
        for name in sorted(shape.required - set(value)):
            out.append(([*loc, name], "is required"))
        for name, item in value.items():
            if name not in shape.fields:
                out.append(([*loc, name], "is not a field the contract allows"))
            else:
                out += problems(item, shape.fields[name], [*loc, name])
    if isinstance(value, list) and shape.items is not None:
        for index, item in enumerate(value):
            out += problems(item, shape.items, [*loc, index])
    return out


def _json_kind(value: Any) -> str:
    """The JSON kind ``value`` is, by the same test as :func:`_kind_ok` (an integer before a number)."""
    named = ("null", "boolean", "integer", "number", "string", "array", "object")
    return next((kind for kind in named if _kind_ok(value, (kind,))), type(value).__name__)


def query_problems(request: Request, allowed: Iterable[str] = ()) -> list[Problem]:
    """Query parameters the endpoint does not take."""
    known = set(allowed)
    return [
        (["query", name], "is not a query parameter of this endpoint")
        for name in sorted(set(request.query_params.keys()) - known)
    ]


def describe(found: list[Problem]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in loc)} {message}" for loc, message in found)


def is_strict(state: EmulatorState) -> bool:
    return bool(getattr(state, "strict", False))


def enforce(
    state: EmulatorState,
    vendor: str,
    found: list[Problem],
    *,
    status: int = 400,
    code: str = "INVALID_REQUEST",
) -> None:
    """In strict mode, refuse a request with problems (counted as ``<vendor>.strict_violation``)."""
    if not found or not is_strict(state):
        return
    state.count(vendor, "strict_violation")
    raise HTTPError(status, f"strict contract check: {describe(found)}", code)


__all__ = [
    "ANY",
    "BOOLEAN",
    "INTEGER",
    "NUMBER",
    "OPEN_OBJECT",
    "STRING",
    "Problem",
    "Shape",
    "array",
    "describe",
    "enforce",
    "is_strict",
    "obj",
    "problems",
    "query_problems",
]
