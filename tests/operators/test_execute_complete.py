"""execute_complete ends the task the right way for each event; a cancelled event is never a success."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    UnexpectedResponseError,
)
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

THETA = "edgeinfer_theta_default"


def _op(**kwargs: Any) -> InferenceOperator:
    return InferenceOperator(task_id="infer", conn_id=THETA, service="whisper", input={}, **kwargs)


def _job(state: str, vendor_state: str, **extra: Any) -> dict[str, Any]:
    return {
        "vendor": "theta",
        "request_id": "infr_rqst_x",
        "state": state,
        "vendor_state": vendor_state,
        **extra,
    }


def test_failed_event_carries_the_vendor_message(emulated: Any) -> None:
    event = {
        "status": "failed",
        "vendor": "theta",
        "request_id": "infr_rqst_x",
        "job": _job("failed", "error", error="the model crashed"),
    }
    with pytest.raises(JobFailedError, match="the model crashed") as raised:
        _op().execute_complete({}, event)  # type: ignore[arg-type]
    assert raised.value.request_id == "infr_rqst_x"
    assert "theta" in str(raised.value)


def test_cancelled_event_fails_the_task(emulated: Any) -> None:
    event = {
        "status": "cancelled",
        "vendor": "theta",
        "request_id": "infr_rqst_x",
        "job": _job("cancelled", "cancelled"),
    }
    with pytest.raises(JobCancelledError):
        _op().execute_complete({}, event)  # type: ignore[arg-type]


def test_timeout_event_cancels_the_remote_request(emulated: Any) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    emulated.state.timing["theta"] = Timing(0.0, 600.0)
    with ThetaHook() as hook:
        request_id = hook.run(hook.api.create_request("whisper", {"audio_filename": "a.wav"})).request.id
    event = {"status": "timeout", "vendor": "theta", "request_id": request_id}
    with pytest.raises(JobTimeoutError):
        _op().execute_complete({}, event)  # type: ignore[arg-type]
    assert emulated.state.snapshot()["cancellations"] == {"theta": 1}


def test_timeout_without_cancel_on_kill_leaves_the_request(emulated: Any) -> None:
    event = {"status": "timeout", "vendor": "theta", "request_id": "infr_rqst_x"}
    with pytest.raises(JobTimeoutError):
        _op(cancel_on_kill=False).execute_complete({}, event)  # type: ignore[arg-type]
    assert emulated.state.snapshot()["requests"].get("theta.cancel_request") is None


def test_error_event_is_rebuilt_as_its_own_class(emulated: Any) -> None:
    event = {
        "status": "error",
        "vendor": "theta",
        "request_id": "infr_rqst_x",
        "error": {
            "type": "AuthenticationError",
            "message": "invalid key",
            "vendor": "theta",
            "http_status": 401,
            "request_id": "infr_rqst_x",
        },
    }
    with pytest.raises(AuthenticationError) as raised:
        _op().execute_complete({}, event)  # type: ignore[arg-type]
    assert raised.value.http_status == 401


@pytest.mark.parametrize("event", [None, {}, {"status": "done", "vendor": "theta"}, {"status": "success"}])
def test_an_event_it_does_not_understand_is_an_error(emulated: Any, event: Any) -> None:
    with pytest.raises(UnexpectedResponseError):
        _op().execute_complete({}, event)  # type: ignore[arg-type]


def test_large_output_without_output_path_is_a_clear_error(emulated: Any) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    with ThetaHook() as hook:
        request_id = hook.run(hook.api.create_request("whisper", {"audio_filename": "a.wav"})).request.id
    event = {
        "status": "success",
        "vendor": "theta",
        "request_id": request_id,
        "job": _job("succeeded", "success") | {"request_id": request_id},
    }
    with pytest.raises(ConfigurationError, match="output_path"):
        _op(xcom_output_max_bytes=10).execute_complete({}, event)  # type: ignore[arg-type]
