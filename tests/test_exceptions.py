"""The exception tree: rendering, pickling and the subclass tree drawn in the module docstring."""

from __future__ import annotations

import inspect
import pickle

import pytest

from airflow_provider_edgeinfer import exceptions as exc_mod
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    ConflictError,
    EdgeInferError,
    InputValidationError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ResultExpiredError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
    VendorValidationError,
)

ALL_CLASSES = [getattr(exc_mod, name) for name in exc_mod.__all__]

#: class -> documented direct parent
TREE: dict[type[EdgeInferError], type[Exception]] = {
    EdgeInferError: Exception,
    ConfigurationError: EdgeInferError,
    InputValidationError: EdgeInferError,
    BudgetExceededError: EdgeInferError,
    TransportError: EdgeInferError,
    VendorConnectionError: TransportError,
    VendorTimeoutError: TransportError,
    OutcomeUnknownError: EdgeInferError,
    VendorAPIError: EdgeInferError,
    AuthenticationError: VendorAPIError,
    NotFoundError: VendorAPIError,
    ResultExpiredError: NotFoundError,
    VendorValidationError: VendorAPIError,
    QuotaExceededError: VendorAPIError,
    ConflictError: VendorAPIError,
    RateLimitError: VendorAPIError,
    ServerError: VendorAPIError,
    UnexpectedResponseError: EdgeInferError,
    JobError: EdgeInferError,
    JobFailedError: JobError,
    JobCancelledError: JobError,
    JobTimeoutError: JobError,
}


def test_tree_is_as_documented() -> None:
    assert set(TREE) == set(ALL_CLASSES)
    for cls, parent in TREE.items():
        assert cls.__bases__ == (parent,), cls


def test_docstring_draws_every_class() -> None:
    doc = inspect.getdoc(exc_mod) or ""
    for cls in ALL_CLASSES:
        assert cls.__name__ in doc


def test_outcome_unknown_is_not_a_transport_error() -> None:
    # Callers retry TransportError; an unknown outcome must never be caught as one.
    assert not issubclass(OutcomeUnknownError, TransportError)


def test_message_renders_every_fact() -> None:
    err = NotFoundError(
        "inference request not found",
        vendor="theta",
        operation="get_request",
        http_status=404,
        request_id="infr_rqst_abc",
        code="NOT_FOUND",
    )
    text = str(err)
    assert text.startswith("[theta get_request] inference request not found")
    assert "(HTTP 404, code NOT_FOUND, request infr_rqst_abc)" in text
    assert text.endswith(NotFoundError.hint)


def test_message_without_facts() -> None:
    assert str(EdgeInferError("plain")) == "plain."
    assert str(EdgeInferError("plain.")) == "plain."
    assert str(EdgeInferError("vendor only", vendor="infrai")) == "[infrai] vendor only."


def test_explicit_hint_wins_over_class_hint() -> None:
    err = ConfigurationError("bad host", vendor="octoai", hint="Use https.")
    assert str(err) == "[octoai] bad host. Use https."
    assert err.hint == "Use https."
    assert str(ConfigurationError("bad host")).endswith(ConfigurationError.hint)


def test_empty_hint_suppresses_class_hint() -> None:
    assert str(ServerError("down", hint="")) == "down."


def test_message_text_is_not_mangled() -> None:
    # Vendor text is quoted as is: ellipses and relative paths keep their dots.
    err = VendorValidationError("file ../in.wav is still loading...", vendor="theta", http_status=400)
    assert "file ../in.wav is still loading..." in str(err)
    assert str(EdgeInferError("why?", http_status=500)) == "why? (HTTP 500)."


def test_fields_are_kept() -> None:
    err = RateLimitError(
        "slow down", vendor="infrai", http_status=429, retry_after=2.5, operation="create_batch"
    )
    assert (err.vendor, err.http_status, err.retry_after, err.operation, err.message) == (
        "infrai",
        429,
        2.5,
        "create_batch",
        "slow down",
    )
    assert err.request_id is None
    assert err.code is None


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_pickle_round_trip_keeps_fields(cls: type[EdgeInferError]) -> None:
    err = cls(
        "it broke",
        vendor="omnitensor",
        http_status=503,
        request_id="req_123",
        operation="infer",
        retry_after=1.5,
        code="E42",
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls
    for name in (
        "message",
        "vendor",
        "http_status",
        "request_id",
        "operation",
        "retry_after",
        "code",
        "hint",
    ):
        assert getattr(clone, name) == getattr(err, name), name
    assert str(clone) == str(err)
    assert clone.args == err.args


def test_pickle_keeps_a_custom_hint() -> None:
    err = JobFailedError("model crashed", vendor="theta", hint="Try a smaller input.")
    clone = pickle.loads(pickle.dumps(err))
    assert clone.hint == "Try a smaller input."
    assert str(clone) == str(err)


def test_catchable_by_family() -> None:
    with pytest.raises(VendorAPIError):
        raise ResultExpiredError("gone", vendor="octoai", http_status=404)
    with pytest.raises(TransportError):
        raise VendorTimeoutError("slow", vendor="theta")
    with pytest.raises(JobError):
        raise JobCancelledError("cancelled", vendor="theta")
