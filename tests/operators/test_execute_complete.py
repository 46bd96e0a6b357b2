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


class _Store:
    """The task state store's interface, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def test_expired_result_fails_and_lets_the_retry_resubmit(emulated: Any) -> None:
    from airflow_provider_edgeinfer.exceptions import ResultExpiredError
    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook
    from airflow_provider_edgeinfer.operators.inference import STATE_KEY

    state = emulated.state
    state.octoai_retention_seconds = 30
    with OctoAIHook() as hook:
        job = hook.run(hook.api.submit("generate/sdxl", {"prompt": "a lighthouse"}))
        done = hook.run(hook.api.status(job.request_id))
    state.clock.advance(31)
    store = _Store()
    store.set(STATE_KEY, {"fingerprint": "f", "request_id": job.request_id, "submitted_at": 0.0})
    event = {
        "status": "success",
        "vendor": "octoai",
        "request_id": job.request_id,
        "job": done.model_dump(mode="json"),
    }
    op = InferenceOperator(
        task_id="gen", conn_id="edgeinfer_octoai_default", service="generate/sdxl", input={}
    )
    with pytest.raises(ResultExpiredError) as raised:
        op.execute_complete({"task_state_store": store}, event)  # type: ignore[arg-type]
    assert raised.value.request_id == job.request_id
    assert STATE_KEY not in store.values, "the next try must submit afresh, not reattach to a dead result"
