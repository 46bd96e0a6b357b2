"""Trigger events carry no model output (Airflow logs every event in full), yet the task returns it.

For each vendor the test makes a request whose output is distinctive, runs the trigger as the
triggerer would, checks the event in every form Airflow writes it (``repr`` in the "Trigger fired
event" log line, ``str``, the JSON stored as ``next_kwargs``) for any part of that output, then
hands the event to ``execute_complete`` and checks the task's result holds the very output.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.exceptions import (
    MAX_EVENT_ERROR_CHARS,
    ConfigurationError,
    EdgeInferError,
    JobFailedError,
    error_payload,
)
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from airflow_provider_edgeinfer.triggers import base as trigger_base
from airflow_provider_edgeinfer.triggers.base import job_event, open_output, seal_output, task_identity_of
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger
from tests.airflow_versions import fired

#: Words no log line of this provider or of Airflow contains: the emulators' answers repeat them.
WORDS = ["Quokkaledger", "Zanzibarite", "marmaladeXV", "overdueinvoice7731", "harbourmaster", "tickety"]
TEXT = " ".join(WORDS)
#: The answer the emulators' chat models give to TEXT (computed by the emulator's own function).
REPLY = media.chat_reply([{"role": "user", "content": TEXT}])

TI = SimpleNamespace(
    dag_id="privacy",
    run_id="manual__1",
    task_id="infer",
    map_index=-1,
    try_number=1,
    xcom_push=lambda **_: None,
)


def _logged_forms(payload: dict[str, Any]) -> str:
    """The event as Airflow writes it: the log line's ``repr``, ``str``, and the database's JSON."""
    event = TriggerEvent(payload)  # type: ignore[no-untyped-call]
    return "\n".join([repr(event), str(event), json.dumps(payload, default=str)])


def assert_carries_none_of(payload: dict[str, Any], needles: list[str]) -> None:
    logged = _logged_forms(payload)
    assert needles and all(needles)
    leaked = [n for n in needles if n in logged]
    assert not leaked, f"the event carries model output {leaked}: {logged[:500]}"


async def _event(trigger: InferenceTrigger) -> dict[str, Any]:
    fired = [dict(e.payload) async for e in trigger.run()]
    assert len(fired) == 1
    return fired[0]


def _requests(emulator: Any, operation: str) -> int:
    return int(emulator.state.snapshot()["requests"].get(operation, 0))


def _sync_trigger(vendor: str, service: str, input: dict[str, Any], **spec: Any) -> InferenceTrigger:
    return InferenceTrigger(
        conn_id=f"edgeinfer_{vendor}_default",
        request_id=None,
        deadline=time.time() + 60,
        submit={
            "service": service,
            "prediction": None,
            "input": input,
            "idempotency_key": f"privacy-{vendor}-{time.time_ns()}",
            "task": task_identity_of(TI),
            **spec,
        },
    )


def _poll_trigger(vendor: str, request_id: str) -> InferenceTrigger:
    return InferenceTrigger(
        conn_id=f"edgeinfer_{vendor}_default",
        request_id=request_id,
        deadline=time.time() + 60,
        poll_interval=0.02,
    )


def _complete(vendor: str, service: str, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    op = InferenceOperator(task_id="infer", conn_id=f"edgeinfer_{vendor}_default", service=service, **kwargs)
    context: Any = {"ti": TI}
    return dict(op.execute_complete(context, event))


# -- synchronous vendors: the answer is made in the triggerer and travels sealed -----------------


async def test_infrai_chat_answer_travels_sealed(emulated: Any) -> None:
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 256}
    event = await _event(_sync_trigger("infrai", "chat.completions", body))

    assert event["status"] == "success" and event["sealed_output"].startswith("v1.")
    assert_carries_none_of(event, [REPLY, *WORDS])

    result = _complete("infrai", "chat.completions", event, input=body)
    assert result["output"]["choices"][0]["message"]["content"] == REPLY
    assert result["request_id"] == event["request_id"]
    assert sum(emulated.state.snapshot()["submissions"]["infrai"].values()) == 1


async def test_omnitensor_inference_answer_travels_sealed(emulated: Any) -> None:
    event = await _event(_sync_trigger("omnitensor", "llm-small", {"prompt": TEXT}))

    assert event["status"] == "success"
    assert_carries_none_of(event, [REPLY, *WORDS])

    result = _complete("omnitensor", "llm-small", event, input={"prompt": TEXT})
    assert result["output"]["output"]["text"] == REPLY
    assert sum(emulated.state.snapshot()["submissions"]["omnitensor"].values()) == 1


# -- asynchronous vendors: the trigger only polls; the worker reads the result once ---------------


async def test_theta_event_carries_no_output_and_the_worker_reads_it_once(emulated: Any) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    emulated.state.timing["theta"] = Timing(0.0, 0.0)
    body = {"messages": [{"role": "user", "content": TEXT}], "stream": False}
    with ThetaHook() as hook:
        request_id = hook.run(hook.api.create_request("llama_3_1_70b", body)).request.id
    event = await _event(_poll_trigger("theta", request_id))

    assert event["status"] == "success"
    assert_carries_none_of(event, [REPLY, *WORDS])

    reads = _requests(emulated, "theta.get_request")
    result = _complete("theta", "llama_3_1_70b", event, input=body)
    assert result["output"]["choices"][0]["message"]["content"] == REPLY
    assert _requests(emulated, "theta.get_request") == reads + 1, "the worker reads the result exactly once"


def test_octoai_event_carries_no_output_and_the_worker_fetches_it_once(emulated: Any, tmp_path: Path) -> None:
    import asyncio

    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook

    emulated.state.timing["octoai"] = Timing(0.0, 0.0)
    with OctoAIHook() as hook:
        job = hook.run(hook.api.submit("generate/sdxl", {"prompt": TEXT}))
    event = asyncio.run(_event(_poll_trigger("octoai", job.request_id)))
    assert event["status"] == "success"

    polls, fetches = _requests(emulated, "octoai.poll"), _requests(emulated, "octoai.get_response")
    result = _complete("octoai", "generate/sdxl", event, input={"prompt": TEXT}, output_path=str(tmp_path))
    assert _requests(emulated, "octoai.get_response") == fetches + 1, "one fetch of the result"
    assert _requests(emulated, "octoai.poll") == polls, "no status read: the event's job names the result"

    with OctoAIHook() as hook:
        image_b64 = hook.run(hook.api.fetch_output(event_job(event)))["images"][0]["image_b64"]
    assert_carries_none_of(event, [image_b64[100:200], *WORDS])
    [png] = result["files"]
    assert Path(png.removeprefix("file://")).read_bytes() == base64.b64decode(image_b64)


def event_job(event: dict[str, Any]) -> Any:
    from airflow_provider_edgeinfer.clients.core import Job

    return Job.model_validate(event["job"]).model_copy(update={"service": "generate/sdxl"})


# -- the seal --------------------------------------------------------------------------------------


def test_a_sealed_output_opens_only_with_its_key_and_task_instance() -> None:
    identity = task_identity_of(TI)
    sealed = seal_output({"text": REPLY}, secrets=("key-1",), identity=identity)
    assert open_output(sealed, secrets=("key-1",), identity=identity) == {"text": REPLY}
    assert seal_output({"text": REPLY}, secrets=("key-1",), identity=identity) != sealed, "fresh nonce"

    other_ti = task_identity_of(SimpleNamespace(**{**vars(TI), "map_index": 3}))
    version, _, body = sealed.partition(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    for text, secrets, who in [
        (sealed, ("key-2",), identity),  # the connection's key changed
        (sealed, ("key-1",), other_ti),  # made for another task instance
        (f"{version}.{base64.urlsafe_b64encode(bytes(raw)).decode()}", ("key-1",), identity),  # altered
        ("v0." + body, ("key-1",), identity),  # unknown format
    ]:
        with pytest.raises(ConfigurationError, match="cannot be opened"):
            open_output(text, secrets=secrets, identity=who, vendor="infrai")


def test_an_output_above_the_bound_is_withheld_and_fails_the_task_clearly(
    emulated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.clients.core import Job, JobState

    monkeypatch.setattr(trigger_base, "MAX_EVENT_OUTPUT_BYTES", 64)
    job = Job(
        vendor="omnitensor",
        request_id="inf_1",
        state=JobState.SUCCEEDED,
        vendor_state="200",
        output={"text": REPLY},
    )
    event = job_event(job, secrets=("key",), identity="x")
    assert "sealed_output" not in event and event["withheld_output_bytes"] > 64
    assert_carries_none_of(event, [REPLY, *WORDS])
    with pytest.raises(ConfigurationError, match="too large") as raised:
        _complete("omnitensor", "llm-small", event, input={"prompt": TEXT})
    assert "deferrable=False" in str(raised.value)


async def test_a_deferred_call_without_a_task_identity_is_never_made(emulated: Any) -> None:
    event = await _event(_sync_trigger("omnitensor", "llm-small", {"prompt": TEXT}, task=None))
    assert event["status"] == "error" and event["error"]["type"] == "ConfigurationError"
    assert sum(emulated.state.snapshot()["submissions"]["omnitensor"].values()) == 0


# -- errors ----------------------------------------------------------------------------------------


def test_errors_in_events_are_short_and_redacted(emulated: Any) -> None:
    from airflow_provider_edgeinfer.clients.core import Job, JobState

    echo = f"model refused: {REPLY} " * 40 + "api_key=sk-live-123456"
    failed = Job(vendor="theta", request_id="r", state=JobState.FAILED, vendor_state="error", error=echo)
    event = job_event(failed)
    assert len(event["job"]["error"]) <= MAX_EVENT_ERROR_CHARS
    assert "sk-live-123456" not in _logged_forms(event)

    payload = error_payload(EdgeInferError(echo, vendor="theta"))
    assert len(payload["message"]) <= MAX_EVENT_ERROR_CHARS
    with pytest.raises(JobFailedError, match="model refused"):
        _complete("theta", "llama_3_1_70b", event)


async def test_the_triggerers_own_log_line_carries_no_output(
    emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through Airflow's TriggerRunner, which writes "Trigger fired event" with the event in full."""
    import asyncio

    from airflow.jobs.triggerer_job_runner import TriggerRunner

    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": TEXT}]}
    trigger = _sync_trigger("infrai", "chat.completions", body)
    runner = TriggerRunner()  # type: ignore[no-untyped-call]
    task = asyncio.create_task(runner.run_trigger(1, trigger))
    runner.triggers[1] = {"task": task, "name": "privacy", "events": 0, "is_watcher": False}
    await task
    [(_, event)] = [fired(entry) for entry in runner.events]
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "Trigger fired event" in text and event.payload["sealed_output"] in text
    assert not [w for w in [REPLY, *WORDS] if w in text]
    result = _complete("infrai", "chat.completions", dict(event.payload), input=body)
    assert result["output"]["choices"][0]["message"]["content"] == REPLY
