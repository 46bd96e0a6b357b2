"""InferenceTrigger: one event, deadline, transient tolerance, on_kill, Airflow's runner, worker path."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.hooks.base import shared_clients
from airflow_provider_edgeinfer.triggers.base import parse_event
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.airflow_versions import fired, since_airflow
from tests.triggers.conftest import NO_PROJECT, submit
from tests.triggers.test_poller import LISTING, first_event, make, until, watching


@pytest.fixture(params=[LISTING, NO_PROJECT])
def conn_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_success_event_and_serialization(theta: Any, conn_id: str) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.05)
    (request_id,) = submit(1, emulator=theta)
    trigger = make(request_id, conn_id, max_transient_failures=3)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_edgeinfer.triggers.inference.InferenceTrigger"
    assert InferenceTrigger(**kwargs).serialize() == (classpath, kwargs)

    event = parse_event(await first_event(trigger), "theta")

    assert event.status == "success"
    assert event.request_id == request_id
    assert event.job is not None and event.job["state"] == "succeeded"
    # Results are read by execute_complete on the worker: the event (logged in full) carries none.
    assert "output" not in event.job and event.sealed_output is None
    assert pollers.active() == 0 and shared_clients.active() == 0


async def test_deadline_fires_timeout(theta: Any, conn_id: str) -> None:
    (request_id,) = submit(1, emulator=theta)
    started = time.monotonic()
    event = await first_event(make(request_id, conn_id, deadline=time.time() + 0.2))
    assert event == {"status": "timeout", "vendor": "theta", "request_id": request_id}
    assert 0.15 < time.monotonic() - started < 5
    assert pollers.active() == 0 and shared_clients.active() == 0


@pytest.mark.parametrize(("faults", "status"), [(2, "success"), (3, "error")])
async def test_transient_failures_are_tolerated_up_to_the_limit(
    theta: Any, conn_id: str, faults: int, status: str
) -> None:
    theta.state.timing["theta"] = Timing(0.0, 0.0)
    (request_id,) = submit(1, emulator=theta)
    theta.state.scripted["theta"].extend(
        {"kind": "5xx", "status": 500, "path": "/infer_request/", "method": "GET"} for _ in range(faults)
    )
    event = await first_event(make(request_id, conn_id, max_transient_failures=2))
    assert event["status"] == status
    assert theta.state.snapshot()["faults_injected"] == {"theta.5xx": faults}
    if status == "error":
        assert event["error"]["type"] == "ServerError"
        assert event["error"]["http_status"] == 500


async def test_on_kill_cancels_the_remote_request(theta: Any) -> None:
    (request_id,) = submit(1, emulator=theta)
    await make(request_id).on_kill()
    assert theta.state.snapshot()["cancellations"] == {"theta": 1}
    assert shared_clients.active() == 0


@since_airflow("3.3", "A trigger's on_kill (a user's kill cancels the remote request)")
async def test_airflow_runner_user_cancel_kills_one_and_the_other_goes_on(theta: Any) -> None:
    """Through Airflow's own TriggerRunner: a user's action cancels one trigger, which cancels its request."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    killed, kept = submit(2, emulator=theta)
    runner = TriggerRunner()
    for trigger_id, request_id in ((1, killed), (2, kept)):
        runner.triggers[trigger_id] = {
            "task": asyncio.create_task(runner.run_trigger(trigger_id, make(request_id))),
            "name": f"trigger {trigger_id}",
            "events": 0,
            "is_watcher": False,
        }
    await until(lambda: watching(LISTING) == 2)
    runner.to_cancel.append(1)
    await runner.cancel_triggers()
    await until(lambda: runner.triggers[1]["task"].done())
    assert theta.state.snapshot()["cancellations"] == {"theta": 1}
    assert watching(LISTING) == 1

    theta.state.clock.advance(601)
    await until(lambda: runner.triggers[2]["task"].done())
    assert [(i, e.payload["status"]) for i, e in map(fired, runner.events)] == [(2, "success")]
    assert await runner.cleanup_finished_triggers() == [1, 2]
    assert pollers.active() == 0 and shared_clients.active() == 0


def test_worker_path_runs_the_same_trigger_in_its_own_loop(theta: Any) -> None:
    """Non-deferrable mode: ``asyncio.run`` of the trigger on the worker, then the loop closes."""
    theta.state.timing["theta"] = Timing(0.0, 0.1)
    (request_id,) = submit(1, emulator=theta)
    result: dict[str, Any] = {}

    def worker() -> None:
        result["event"] = make(request_id).run_on_worker()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert result["event"]["status"] == "success"
    assert result["event"]["request_id"] == request_id


async def test_answers_that_never_parse_end_the_trigger_after_the_tolerated_failures(
    theta: Any, conn_id: str
) -> None:
    """A vendor that keeps answering garbage is an error after max_transient_failures, not at the deadline."""
    theta.state.timing["theta"] = Timing(0.0, 60.0)
    (request_id,) = submit(1, emulator=theta)
    theta.state.faults["theta"].update({"rate_malformed": 1.0, "mangle_methods": "GET"})
    started = time.monotonic()
    event = await first_event(make(request_id, conn_id, max_transient_failures=2, deadline=time.time() + 60))
    assert event["status"] == "error"
    assert event["error"]["type"] == "UnexpectedResponseError"
    assert time.monotonic() - started < 20, "ended by the failure count, not by the 60 s deadline"
    assert pollers.active() == 0 and shared_clients.active() == 0


async def test_the_state_is_logged_on_each_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between "trigger starting" and "trigger fired" the log says what the request is doing."""
    from airflow_provider_edgeinfer.clients.core import Job, JobState
    from airflow_provider_edgeinfer.triggers.inference import Watch

    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: Any) -> None:
            lines.append(message % args if args else message)

    trigger = InferenceTrigger(
        conn_id="c", request_id="r1", deadline=time.time() + 600, submitted_at=time.time() - 3
    )
    trigger.vendor = "theta"
    monkeypatch.setattr(InferenceTrigger, "log", Log())
    entry = Watch("r1", 1.0, 5)

    def job(state: JobState, vendor_state: str) -> Job:
        return Job(vendor="theta", request_id="r1", state=state, vendor_state=vendor_state)

    waiting = asyncio.create_task(trigger._wait_logging(entry))
    await asyncio.sleep(0)
    for answer in [
        job(JobState.QUEUED, "pending"),
        job(JobState.QUEUED, "pending"),  # the same state again: nothing new to say
        job(JobState.RUNNING, "processing"),
        job(JobState.SUCCEEDED, "success"),
    ]:
        entry.record(answer)
    outcome = await waiting
    assert isinstance(outcome, Job) and outcome.state is JobState.SUCCEEDED
    assert [line.split(" after ")[0] for line in lines] == [
        "theta request r1: waiting for the first poll",
        "theta request r1: queued (pending)",
        "theta request r1: running (processing)",
        "theta request r1: succeeded (success)",
    ]
    assert lines[0].endswith(" after 3s")
