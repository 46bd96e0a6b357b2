"""The shape of trigger events, and errors carried across the triggerer as data (never as text to parse).

Events are small: ids, states, cost and a short message. A job's output crosses only for a
synchronous vendor (whose one call ran in the trigger), and only up to :data:`MAX_EVENT_OUTPUT_BYTES`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_edgeinfer import exceptions

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.jobs import Job

#: Outputs above this size never travel in an event (they would land in the metadata database).
MAX_EVENT_OUTPUT_BYTES = 512 * 1024

_STATUS_BY_STATE = {
    "succeeded": "success",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "failed",
}


class ErrorPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    message: str
    vendor: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    operation: str | None = None
    code: str | None = None


class EventPayload(BaseModel):
    """What ``execute_complete`` accepts; anything else is an error, not a success."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["success", "failed", "cancelled", "timeout", "error"]
    vendor: str
    request_id: str | None = None
    job: dict[str, Any] | None = None
    output_included: bool = False
    error: ErrorPayload | None = None


def error_payload(error: exceptions.EdgeInferError) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "message": error.message,
        "vendor": error.vendor,
        "http_status": error.http_status,
        "request_id": error.request_id,
        "operation": error.operation,
        "code": error.code,
    }


def rebuild_error(payload: ErrorPayload) -> exceptions.EdgeInferError:
    cls = getattr(exceptions, payload.type, None)
    if not (isinstance(cls, type) and issubclass(cls, exceptions.EdgeInferError)):
        cls = exceptions.EdgeInferError
    return cls(
        payload.message,
        vendor=payload.vendor,
        http_status=payload.http_status,
        request_id=payload.request_id,
        operation=payload.operation,
        code=payload.code,
    )


def job_event(job: Job, *, include_output: bool = False) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    data["error"] = (data.get("error") or None) and str(data["error"])[:500]
    output_included = False
    if include_output and job.output is not None:
        if len(json.dumps(job.output, default=str)) <= MAX_EVENT_OUTPUT_BYTES:
            output_included = True
        else:
            data["output"] = None
    else:
        data["output"] = None
    return {
        "status": _STATUS_BY_STATE.get(job.state.value, "error"),
        "vendor": job.vendor,
        "request_id": job.request_id,
        "job": data,
        "output_included": output_included,
    }


def parse_event(event: Any, vendor: str) -> EventPayload:
    try:
        return EventPayload.model_validate(event)
    except ValidationError as exc:
        raise exceptions.UnexpectedResponseError(
            f"the trigger sent an event this operator does not understand: {exc.errors()[0]['msg']}",
            vendor=vendor,
        ) from None
