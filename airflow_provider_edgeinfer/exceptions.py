"""Every error the provider raises, in one tree.

::

    EdgeInferError                      base: vendor, http_status, request_id, operation
    ├── ConfigurationError              connection or argument unusable (bad host, missing key, wrong type)
    ├── InputValidationError            input rejected locally, before any request was sent
    ├── BudgetExceededError             a batch's estimated cost is above its budget: nothing submitted
    ├── TransportError                  no HTTP answer
    │   ├── VendorConnectionError       the request never reached the vendor (safe to retry)
    │   └── VendorTimeoutError          no answer in time on a call that is safe to repeat
    ├── OutcomeUnknownError             a call that creates work or moves money was sent, answer lost
    ├── VendorAPIError                  the vendor answered with an error status
    │   ├── AuthenticationError         401 / 403: key or token refused
    │   ├── NotFoundError               404: unknown id, alias or route
    │   │   └── ResultExpiredError      404 on a result past the vendor's retention
    │   ├── VendorValidationError       400 / 413 / 422: the vendor refused the input
    │   ├── QuotaExceededError          402: credit or balance exhausted
    │   ├── ConflictError               409 (other than capacity)
    │   ├── RateLimitError              429 (carries retry_after)
    │   └── ServerError                 5xx, or Theta 409 "No instances available" (capacity)
    ├── UnexpectedResponseError         malformed JSON, unknown state, 200 with an error body
    └── JobError                        a remote job ended without success
        ├── JobFailedError
        ├── JobCancelledError
        └── JobTimeoutError

Messages never carry credentials: callers pass ids and redacted URLs only
(see :mod:`airflow_provider_edgeinfer.clients.redact`).

Errors cross processes (a trigger's event, a batch's ``failures.jsonl``) as data, never as text to
parse: :func:`error_payload` writes one, :func:`rebuild_error` raises it again as its own class.
``__all__`` is the tree alone.

This module imports nothing from Airflow, so vendor clients can use it anywhere.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict


class EdgeInferError(Exception):
    """Base of every provider error; the message says what happened and what to do."""

    #: Default advice appended to the message when the raiser gives none.
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.vendor = vendor
        self.http_status = http_status
        self.request_id = request_id
        self.operation = operation
        self.retry_after = retry_after
        self.code = code
        if hint is not None:
            self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.vendor:
            where.append(self.vendor)
        if self.operation:
            where.append(self.operation)
        head = f"[{' '.join(where)}] " if where else ""
        facts = []
        if self.http_status is not None:
            facts.append(f"HTTP {self.http_status}")
        if self.code:
            facts.append(f"code {self.code}")
        if self.request_id:
            facts.append(f"request {self.request_id}")
        tail = f" ({', '.join(facts)})" if facts else ""
        hint = f" {self.hint}" if self.hint else ""
        text = f"{head}{self.message}{tail}"
        # End with one full stop, without touching the quoted text itself ("...", "../x").
        if not text.endswith((".", "!", "?")):
            text += "."
        return f"{text}{hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor: make pickling (task runner, triggerer) round-trip.
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "vendor": self.vendor,
                    "http_status": self.http_status,
                    "request_id": self.request_id,
                    "operation": self.operation,
                    "hint": self.hint,
                    "retry_after": self.retry_after,
                    "code": self.code,
                },
            ),
        )


@contextlib.contextmanager
def naming_vendor(vendor: str) -> Iterator[None]:
    """Errors raised inside (by vendor-agnostic helpers: input files, JSONL) name ``vendor``."""
    try:
        yield
    except EdgeInferError as exc:
        if exc.vendor is None:
            exc.vendor = vendor
            exc.args = (exc._render(),)
        raise


def _rebuild(cls: type[EdgeInferError], message: str, kwargs: dict[str, Any]) -> EdgeInferError:
    return cls(message, **kwargs)


class ConfigurationError(EdgeInferError):
    hint = "Check the connection (host, password, extras) or the operator's arguments."


class InputValidationError(EdgeInferError):
    hint = "Fix the input; nothing was sent to the vendor."


class BudgetExceededError(EdgeInferError):
    hint = "Raise max_cost_usd or submit fewer items; nothing was submitted."


class TransportError(EdgeInferError):
    """No HTTP answer was received."""


class VendorConnectionError(TransportError):
    hint = "The request never reached the vendor; check the host and network, then retry."


class VendorTimeoutError(TransportError):
    hint = "The vendor did not answer in time; raise the connection's timeout or retry later."


class OutcomeUnknownError(EdgeInferError):
    hint = (
        "The request was sent but its answer was lost, so it may have been executed (and billed). "
        "It was not repeated automatically: check the vendor's console before resubmitting."
    )


class VendorAPIError(EdgeInferError):
    """The vendor answered with an error status."""


class AuthenticationError(VendorAPIError):
    hint = "Check the API key (connection password) and, for OmniTensor, the secret."


class NotFoundError(VendorAPIError):
    hint = "Check the id, service alias or model id."


class ResultExpiredError(NotFoundError):
    hint = "The vendor no longer keeps this result; resubmit the request."


class VendorValidationError(VendorAPIError):
    hint = "The vendor refused the input; fix the field it names."


class QuotaExceededError(VendorAPIError):
    hint = "The account's credit or balance is exhausted; top it up before retrying."


class ConflictError(VendorAPIError):
    pass


class RateLimitError(VendorAPIError):
    hint = "The vendor's rate limit was hit; lower concurrency or wait before retrying."


class ServerError(VendorAPIError):
    hint = "The vendor had a server-side problem; retry later."


#: ``code`` of an :class:`UnexpectedResponseError` whose body was not even valid JSON (a garbled or
#: cut answer): transient by nature, so a read may simply be repeated.
MALFORMED_BODY = "MALFORMED_BODY"
#: ``code`` of an :class:`UnexpectedResponseError` whose answer passed the connection's size limit
#: (``max_response_bytes``, ``max_download_bytes``): it was abandoned unread, and is not retried.
RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
#: ``code`` of an :class:`UnexpectedResponseError` whose JSON nests deeper than a decoder can follow.
NESTING_TOO_DEEP = "NESTING_TOO_DEEP"
#: ``code`` of a :class:`VendorTimeoutError` or :class:`OutcomeUnknownError` whose exchange outlived
#: its total deadline (``call_deadline``, ``download_deadline``) however often bytes trickled in.
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class UnexpectedResponseError(EdgeInferError):
    hint = "The vendor's answer did not match its contract; report it with the request id."


class JobError(EdgeInferError):
    """A remote job ended without success."""


class JobFailedError(JobError):
    hint = "See the vendor's message; resubmit once the cause is fixed."


class JobCancelledError(JobError):
    hint = "The request was cancelled before it finished; nothing was produced."


class JobTimeoutError(JobError):
    hint = "The request did not finish within the timeout; raise `timeout` or check the vendor's queue."


# -- errors as data ------------------------------------------------------------------------------

#: Error texts carried as data are cut to this: a vendor's message may echo part of the input or output.
MAX_EVENT_ERROR_CHARS = 300


class ErrorPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    message: str
    vendor: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    operation: str | None = None
    code: str | None = None


def short_text(text: str | None) -> str | None:
    """An error text fit for an event: redacted and cut to :data:`MAX_EVENT_ERROR_CHARS`."""
    from airflow_provider_edgeinfer.clients.redact import redact_vendor_text

    if not text:
        return None
    text = redact_vendor_text(str(text))
    return text if len(text) <= MAX_EVENT_ERROR_CHARS else text[: MAX_EVENT_ERROR_CHARS - 1] + "…"


def error_payload(error: EdgeInferError) -> dict[str, Any]:
    """``error`` as data (its message redacted and cut), for :func:`rebuild_error`."""
    return {
        "type": type(error).__name__,
        "message": short_text(error.message) or type(error).__name__,
        "vendor": error.vendor,
        "http_status": error.http_status,
        "request_id": error.request_id,
        "operation": error.operation,
        "code": error.code,
    }


def rebuild_error(payload: ErrorPayload) -> EdgeInferError:
    """The error :func:`error_payload` described, as its own class (an unknown one as the base)."""
    cls = getattr(sys.modules[__name__], payload.type, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgeInferError)):
        cls = EdgeInferError
    return cls(
        payload.message,
        vendor=payload.vendor,
        http_status=payload.http_status,
        request_id=payload.request_id,
        operation=payload.operation,
        code=payload.code,
    )


__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigurationError",
    "ConflictError",
    "EdgeInferError",
    "InputValidationError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "OutcomeUnknownError",
    "QuotaExceededError",
    "RateLimitError",
    "ResultExpiredError",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
    "VendorAPIError",
    "VendorConnectionError",
    "VendorTimeoutError",
    "VendorValidationError",
]
