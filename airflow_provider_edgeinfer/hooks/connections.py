"""Connection extras: one typed model per connection type, the single source of truth for them.

Each model both generates the connection form (``conn-fields`` in
:mod:`~airflow_provider_edgeinfer.provider_info`: types, defaults, minimums, descriptions,
placeholders) and validates a connection's extras when a hook reads it
(:meth:`~airflow_provider_edgeinfer.hooks.base.EdgeInferHook.read_extras`), so the form and the
checks cannot drift apart. The checks are declarative (types, bounds, no unknown extra, no ``nan``
or ``inf``), so pydantic alone runs while a connection is read. Only a refusal says why in words
of ours (:meth:`ConnectionExtras.refusal`): an unknown extra with the closest known name
(``max_retry`` -> ``max_retries``), for a typo would otherwise do nothing, and a bad number as
:mod:`~airflow_provider_edgeinfer.arguments` words it for every numeric argument of the package.

Imported when Airflow reads the provider's metadata: pydantic and the standard library only.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.config import JsonDict

from airflow_provider_edgeinfer import arguments

MiB = 1024 * 1024


def _field(default: Any, label: str, description: str, placeholder: str | None = None, **bounds: Any) -> Any:
    extra: JsonDict = {"label": label}
    if placeholder:
        extra["placeholder"] = placeholder
    return Field(default, description=description, json_schema_extra=extra, **bounds)


def _bound(metadata: list[Any], kind: type, attr: str) -> float | None:
    """A field's ``ge`` or ``gt`` bound, as pydantic keeps it."""
    return next((float(getattr(m, attr)) for m in metadata if isinstance(m, kind)), None)


class ConnectionExtras(BaseModel):
    """Extras every edgeinfer connection takes (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Connection type the model belongs to (``edgeinfer_<vendor>``).
    conn_type: ClassVar[str] = ""
    #: The connection type's name in Airflow's forms (its hook's ``hook_name``).
    hook_name: ClassVar[str] = ""

    api_key: SecretStr | None = _field(
        None, "API key (alternative)", "Used when the connection's password field is empty."
    )
    scheme: Literal["http", "https"] | None = _field(
        None,
        "Scheme",
        "For a host given without one. Default https (http for a loopback host, such as the emulator).",
    )
    timeout: float = _field(60.0, "Read timeout (s)", "Longest wait for each read of an answer.", gt=0)
    connect_timeout: float = _field(10.0, "Connect timeout (s)", "Longest wait to open a connection.", gt=0)
    max_retries: int = _field(
        4,
        "Max retries per call",
        "Retries of a failed call after its first attempt (0: never retry).",
        ge=0,
    )
    retry_initial_delay: float = _field(0.5, "First retry delay (s)", "First backoff delay.", ge=0)
    retry_max_delay: float = _field(30.0, "Longest retry delay (s)", "Longest single backoff delay.", ge=0)
    retry_max_total_delay: float = _field(
        120.0, "Max total retry delay (s)", "Upper bound of one call's retries, waits included.", ge=0
    )
    max_connections: int = _field(
        100, "Connection pool size", "Open connections to the vendor at most.", ge=1
    )
    max_response_bytes: int = _field(
        64 * MiB,
        "Max answer size (bytes)",
        "Largest decoded API answer, counted as it arrives (64 MiB).",
        ge=1,
    )
    call_deadline: float = _field(
        300.0,
        "Call deadline (s)",
        "Longest API exchange, connect to last byte, however slowly it drips.",
        gt=0,
    )
    max_download_bytes: int = _field(
        2048 * MiB,
        "Max media download (bytes)",
        "Largest media file downloaded from an output URL (2 GiB).",
        ge=1,
    )
    download_deadline: float = _field(3600.0, "Media download deadline (s)", "Longest media download.", gt=0)

    @classmethod
    def known(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def refusal(cls, given: dict[str, Any], exc: ValidationError, conn_id: str) -> str:
        """Why ``given`` was refused, one sentence per bad extra, in :mod:`arguments`' words for numbers.

        Only asked once validation failed: an unknown extra is named with the closest known name
        (a typo would otherwise do nothing), before anything else is said.
        """
        errors = exc.errors(include_url=False, include_input=False)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            return "; ".join(unknown_extra(k, cls.known(), conn_id) for k in unknown)
        reasons = []
        for error in errors:
            name = ".".join(str(part) for part in error["loc"])
            words = cls._number_refusal(name, given.get(name))
            reasons.append(words or f"extra {name!r}: {error['msg']}")
        return f"connection {conn_id!r}: {'; '.join(reasons)}"

    @classmethod
    def _number_refusal(cls, name: str, value: Any) -> str | None:
        """What :mod:`arguments` says of a refused numeric extra (None for any other extra)."""
        field = cls.model_fields.get(name)
        if field is None or field.annotation not in (int, float):
            return None
        minimum = _bound(field.metadata, annotated_types.Ge, "ge")
        above = _bound(field.metadata, annotated_types.Gt, "gt")
        label = f"extra {name!r}"
        try:
            if field.annotation is int:
                floor = minimum if minimum is not None else (above + 1 if above is not None else None)
                arguments.whole(label, value, minimum=None if floor is None else int(floor))
            else:
                arguments.finite(label, value, minimum=minimum, above=above)
        except ValueError as exc:
            return str(exc)
        return None


def unknown_extra(key: str, known: list[str], conn_id: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    guess = f": did you mean {close[0]!r}?" if close else f" (known extras: {', '.join(sorted(known))})"
    return f"connection {conn_id!r} has an unknown extra {key!r}{guess}"


class ThetaExtras(ConnectionExtras):
    conn_type: ClassVar[str] = "edgeinfer_theta"
    hook_name: ClassVar[str] = "Theta EdgeCloud (edgeinfer)"

    project_id: str | None = _field(
        None, "Project id", "Needed to list requests (finding a lost submission, batch listings).", "prj_..."
    )


class OctoAIExtras(ConnectionExtras):
    conn_type: ClassVar[str] = "edgeinfer_octoai"
    hook_name: ClassVar[str] = "OctoAI (edgeinfer)"

    async_host: str | None = _field(
        None,
        "Async host",
        "Where requests are polled and results fetched. Default https://async.octoai.run.",
        "https://async.octoai.run",
    )
    text_host: str | None = _field(
        None,
        "Text host",
        "The OpenAI-compatible text API. Default https://text.octoai.run.",
        "https://text.octoai.run",
    )
    deployment_url_template: str | None = _field(
        None,
        "Deployment URL template",
        "A deployed endpoint's URL, with {name}. Default https://{name}.octoai.run.",
        "https://{name}.octoai.run",
    )


class InfraiExtras(ConnectionExtras):
    conn_type: ClassVar[str] = "edgeinfer_infrai"
    hook_name: ClassVar[str] = "infrai (edgeinfer)"


class OmniTensorExtras(ConnectionExtras):
    conn_type: ClassVar[str] = "edgeinfer_omnitensor"
    hook_name: ClassVar[str] = "OmniTensor (edgeinfer)"

    secret: SecretStr | None = _field(
        None, "API secret", "Required: exchanged with the API key for a short-lived token."
    )
    max_model_bytes: int = _field(
        100 * MiB, "Max model upload (bytes)", "Largest model file uploaded (100 MiB).", ge=1
    )


#: connection type -> its extras model
MODELS: dict[str, type[ConnectionExtras]] = {
    m.conn_type: m for m in (ThetaExtras, OctoAIExtras, InfraiExtras, OmniTensorExtras)
}


def conn_fields(model: type[ConnectionExtras]) -> dict[str, Any]:
    """Airflow's ``conn-fields`` of a connection type, generated from its model.

    Every field also takes null: the form stores an untouched field so, and the hook reads it as
    the default.
    """
    fields: dict[str, Any] = {}
    for name, prop in model.model_json_schema()["properties"].items():
        prop = dict(prop)
        label = prop.pop("label")
        description = prop.pop("description")
        prop.pop("placeholder", None)
        prop.pop("title", None)
        variants = prop.pop("anyOf", None) or [{"type": prop.pop("type")}]
        schema: dict[str, Any] = {}
        for variant in variants:
            schema.update({k: v for k, v in variant.items() if k != "type"})
        types = [v["type"] for v in variants if "type" in v and v["type"] != "null"]
        schema = {"type": [*types, "null"], **schema, **prop}
        if schema.pop("writeOnly", False):
            schema["format"] = "password"
        if schema.get("default") is None:
            schema.pop("default", None)
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        fields[name] = {"label": label, "description": description, "schema": schema}
    return fields


def placeholders(model: type[ConnectionExtras]) -> dict[str, str]:
    """The form's placeholders of the model's extras."""
    props = model.model_json_schema()["properties"]
    return {name: prop["placeholder"] for name, prop in props.items() if "placeholder" in prop}
