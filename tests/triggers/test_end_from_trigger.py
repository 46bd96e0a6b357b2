"""``end_from_trigger``: a succeeded request ends its task in the triggerer, with its result as XCom.

Anything but a plain success (a failure, an output too large for XCom, a failed read) fires the
ordinary event, so the worker finishes the task exactly as it would without the option.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.hooks.base import shared_clients
from airflow_provider_edgeinfer.hooks.theta import ThetaHook
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.airflow_versions import fired, since_airflow
from tests.triggers.conftest import NO_PROJECT, submit
from tests.triggers.test_poller import LISTING, make, until

SPEC = {"service": "llama_3_1_70b", "xcom_max_bytes": 48 * 1024, "input_ref": "calls/a.wav", "xcom": True}


@pytest.fixture(params=[LISTING, NO_PROJECT])
def conn_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def only_event(trigger: InferenceTrigger) -> TriggerEvent:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return events[0]


#: A task instance as the triggerer hands one to a trigger (the fields its runner reads).
TI = SimpleNamespace(
    id="0192", dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, context_carrier=None
)


def ending(request_id: str, conn_id: str = LISTING, **kwargs: Any) -> InferenceTrigger:
    """A trigger with ``end_task`` as a triggerer runs it: for a task instance."""
    trigger = make(request_id, conn_id, **{"end_task": SPEC, **kwargs})
    trigger.task_instance = TI  # type: ignore[assignment]
    return trigger


def xcoms(event: TriggerEvent) -> dict[str, Any]:
    """The XComs a ``TaskSuccessEvent`` asks the triggerer to push."""
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is not None
    return dict(event.xcoms)


def vendor_output(request_id: str) -> Any:
    hook = ThetaHook()
    try:
        return hook.run(hook.api.status(request_id)).output
    finally:
        hook.close()


async def test_a_success_ends_the_task_with_the_result_as_xcom(theta: Any, conn_id: str) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    trigger = ending(request_id, conn_id, submitted_at=1000.0)
    classpath, kwargs = trigger.serialize()
    assert kwargs["end_task"] == SPEC and InferenceTrigger(**kwargs).serialize() == (classpath, kwargs)

    event = await only_event(trigger)

    assert isinstance(event, TaskSuccessEvent)
    # What the triggerer logs and stores of the event is its state; the result goes to XCom only.
    assert event.payload == "success" and "output" not in repr(event)
    assert event.xcoms is not None
    result = xcoms(event)["return_value"]
    assert result["vendor"] == "theta" and result["request_id"] == request_id
    assert result["service"] == "llama_3_1_70b" and result["state"] == "succeeded"
    assert result["input_ref"] == "calls/a.wav"
    assert result["timings"]["submitted_at"] == 1000.0
    assert result["output"] == vendor_output(request_id) and result["output"] is not None
    assert pollers.active() == 0 and shared_clients.active() == 0


async def test_no_xcom_push_ends_the_task_without_xcom(theta: Any) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    event = await only_event(ending(request_id, end_task={**SPEC, "xcom": False}))
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is not None
    assert "return_value" not in xcoms(event) and xcoms(event)["request_id"] == request_id


async def test_an_output_too_large_for_xcom_resumes_on_the_worker(theta: Any, conn_id: str) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    event = await only_event(ending(request_id, conn_id, end_task={**SPEC, "xcom_max_bytes": 10}))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "success" and event.payload["request_id"] == request_id


async def test_a_failed_request_resumes_on_the_worker(theta: Any) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, fails=True, emulator=theta)
    event = await only_event(ending(request_id))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "failed"


async def test_a_failed_result_read_resumes_on_the_worker(theta: Any) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    # The listing says it ended; the read of its result fails (no client retries absorb a 404).
    theta.state.scripted["theta"].append(
        {"kind": "5xx", "status": 404, "path": f"/infer_request/{request_id}", "method": "GET"}
    )
    event = await only_event(ending(request_id))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "success"
    assert pollers.active() == 0 and shared_clients.active() == 0


@since_airflow("3.3", "Airflow's TriggerRunner driven in-process")
async def test_airflow_runner_carries_the_result_to_its_supervisor(theta: Any) -> None:
    """Through Airflow's own TriggerRunner and the message its supervisor receives (which pushes the XCom)."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner, messages

    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    runner = TriggerRunner()  # type: ignore[no-untyped-call]
    runner.triggers[1] = {
        "task": asyncio.create_task(runner.run_trigger(1, ending(request_id))),
        "name": "trigger 1",
        "events": 0,
        "is_watcher": False,
    }
    await until(lambda: runner.triggers[1]["task"].done())
    [(trigger_id, event)] = [fired(entry) for entry in runner.events]
    message = messages.TriggerStateChanges(events=list(runner.events))
    [entry] = type(message).model_validate_json(message.model_dump_json()).events or []
    _, received = fired(entry)
    assert trigger_id == 1 and isinstance(received, TaskSuccessEvent)
    assert received.xcoms == event.xcoms and received.xcoms is not None
    assert xcoms(received)["return_value"]["request_id"] == request_id
    assert pollers.active() == 0 and shared_clients.active() == 0


async def test_without_a_task_instance_the_task_resumes(theta: Any) -> None:
    """A runner that runs the trigger for no task instance (``dag.test`` inline) gets the ordinary event."""
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    event = await only_event(make(request_id, end_task=SPEC))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"


async def test_an_answer_in_the_call_ends_the_task_with_result_request_id_and_link(emulated: Any) -> None:
    """A service that answers in the call: its answer goes to XCom as the worker would push it."""
    from airflow_provider_edgeinfer.progress import VendorRequestLink

    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "say hello"}], "max_tokens": 8}
    trigger = InferenceTrigger(
        conn_id="edgeinfer_infrai_default",
        request_id=None,
        deadline=time.time() + 60,
        submit={
            "service": "chat.completions",
            "prediction": None,
            "input": body,
            "task": "d\x1fr\x1ft\x1f-1",
        },
        end_task={**SPEC, "service": "chat.completions"},
    )
    trigger.task_instance = TI  # type: ignore[assignment]

    event = await only_event(trigger)

    assert isinstance(event, TaskSuccessEvent) and event.xcoms is not None
    result = xcoms(event)["return_value"]
    assert result["vendor"] == "infrai" and result["service"] == "chat.completions"
    assert result["output"]["choices"][0]["message"]["content"]
    assert xcoms(event)["request_id"] == result["request_id"]
    link = xcoms(event).get(VendorRequestLink().xcom_key)
    assert link is None or link.startswith("https://")
    assert sum(emulated.state.snapshot()["submissions"]["infrai"].values()) == 1
