"""Airflow's own ``TriggerRunner`` in-process, driven the way its supervisor drives it.

The triggers travel as the triggerer receives them (serialized, kwargs encrypted, a ``RunTrigger``
workload each), are built by ``create_triggers`` and run by ``run_trigger``. What the supervisor
process adds is played here without its database and socket:

- **Its answers to sync SDK calls.** In the triggerer, a trigger's synchronous SDK call (reading a
  connection's ``extra_dejson`` sends ``MaskSecret``) goes through ``TriggerCommsDecoder.send``,
  which suspends the trigger mid-function with ``greenback.await_`` until the supervisor answers:
  other triggers run in between, inside what looks like plain sync code. Airflow's own ``send``
  runs here; only the round trip (``asend``) is replaced by a short wait. Without this, a runner in
  a test process has no ``SUPERVISOR_COMMS`` and such calls never yield.
- **Its bookkeeping.** Each loop it takes the events and the finished triggers; a trigger that fired
  its event but was still running one sync later is no longer wanted (its task instance resumed and
  the trigger row was cleaned) and is cancelled, with the user-action message, at every sync until
  it reports finished: what ``TriggerRunnerSupervisor.update_triggers`` does with
  ``cancelling_triggers``.

Shutdown cancels every task without a message, as the triggerer does on stop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import pytest

from tests.airflow_versions import fired

#: Seconds the stand-in supervisor takes to answer a sync SDK call (the real one: a socket round trip).
SUPERVISOR_ANSWER_SECONDS = 0.005
_ABSENT = object()


def supervisor_comms(answer_seconds: float = SUPERVISOR_ANSWER_SECONDS) -> Any:
    """A ``TriggerCommsDecoder`` for the running loop whose supervisor answers after ``answer_seconds``."""
    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder
    from airflow.sdk.execution_time.comms import MaskSecret

    class Comms(TriggerCommsDecoder):  # type: ignore[misc]
        async def asend(self, msg: Any) -> Any:
            await asyncio.sleep(answer_seconds)
            if isinstance(msg, MaskSecret):
                return None  # the supervisor masks it in its own logs and answers nothing
            raise NotImplementedError(f"the stand-in supervisor does not answer {type(msg).__name__}")

    # No socket: asend above is the whole round trip.
    comms = Comms(async_writer=None, async_reader=None, socket=None)  # type: ignore[arg-type]
    comms._loop = asyncio.get_running_loop()
    comms._loop_thread_id = threading.get_ident()
    return comms


def workloads(triggers: Iterable[Any], first_id: int = 1) -> list[Any]:
    """``RunTrigger`` workloads of ``triggers``, ids from ``first_id``, as the supervisor builds them."""
    try:
        from airflow.executors.workloads.trigger import RunTrigger
    except ModuleNotFoundError:  # Airflow 3.1: another triggerer protocol, which this harness does not play
        pytest.skip("the in-process triggerer harness plays the triggerer of Airflow 3.2 and later")
    from airflow.models.trigger import Trigger

    out = []
    for trigger_id, trigger in enumerate(triggers, start=first_id):
        classpath, kwargs = trigger.serialize()
        out.append(
            # ti=None: no task instance (Airflow 3.2 requires the field, 3.3 defaults it)
            RunTrigger(
                id=trigger_id, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs), ti=None
            )
        )
    return out


class Triggerer:
    """One in-process triggerer: ``TriggerRunner`` plus the supervisor's bookkeeping."""

    def __init__(self, *, supervisor_answer_seconds: float = SUPERVISOR_ANSWER_SECONDS) -> None:
        from airflow.jobs.triggerer_job_runner import TriggerRunner

        self._answer_seconds = supervisor_answer_seconds
        self._previous_comms: Any = None

        self.runner = TriggerRunner()  # type: ignore[no-untyped-call]
        #: Every event fired, by trigger id, in order.
        self.events: dict[int, list[dict[str, Any]]] = {}
        #: Triggers the runner reported failed (exited with an error or without an event).
        self.failed: dict[int, BaseException | None] = {}
        #: Triggers cancelled because they were still running after their event was persisted.
        self.cancelled_after_event: set[int] = set()
        self._fired_last_sync: set[int] = set()
        self._cancelling: set[int] = set()
        self._next_id = 1

    async def __aenter__(self) -> Triggerer:
        from airflow.sdk.execution_time import task_runner

        self._previous_comms = task_runner.__dict__.get("SUPERVISOR_COMMS", _ABSENT)
        task_runner.SUPERVISOR_COMMS = supervisor_comms(self._answer_seconds)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        from airflow.sdk.execution_time import task_runner

        try:
            await self.shutdown()
        finally:
            if self._previous_comms is _ABSENT:
                task_runner.__dict__.pop("SUPERVISOR_COMMS", None)
            else:
                task_runner.SUPERVISOR_COMMS = self._previous_comms

    def add(self, triggers: Iterable[Any]) -> list[int]:
        """Queue ``triggers`` for creation; returns their ids."""
        batch = workloads(triggers, self._next_id)
        self._next_id += len(batch)
        self.runner.to_create.extend(batch)
        return [w.id for w in batch]

    @property
    def running(self) -> int:
        return len(self.runner.triggers) + len(self.runner.to_create)

    async def step(self) -> None:
        """One turn of ``TriggerRunner.arun``'s loop, the supervisor's sync included."""
        runner = self.runner
        finished = set(await runner.cleanup_finished_triggers())
        # The supervisor: events persisted, failures recorded, finished triggers forgotten.
        fired_now: set[int] = set()
        while runner.events:
            trigger_id, event = fired(runner.events.popleft())
            self.events.setdefault(trigger_id, []).append(dict(event.payload))
            fired_now.add(trigger_id)
        while runner.failed_triggers:
            trigger_id, exc = runner.failed_triggers.popleft()
            self.failed[trigger_id] = exc
        self._cancelling -= finished
        # Fired at the previous sync and not finished since: its trigger row is gone, so cancel it.
        stale = {t for t in self._fired_last_sync - finished if t in runner.triggers}
        self._cancelling |= stale
        self.cancelled_after_event |= stale
        self._fired_last_sync = (self._fired_last_sync | fired_now) - finished
        runner.to_cancel.extend(sorted(self._cancelling))
        await runner.create_triggers()  # type: ignore[no-untyped-call]
        await runner.cancel_triggers()  # type: ignore[no-untyped-call]

    async def run_until_done(
        self,
        *,
        seconds: float,
        tick: float = 0.02,
        between: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        """Run loop turns every ``tick`` seconds until no trigger runs, or fail after ``seconds``."""
        give_up = time.monotonic() + seconds
        while True:
            await self.step()
            if not self.running:
                return
            if time.monotonic() > give_up:
                raise AssertionError(
                    f"triggers still running after {seconds} s: {sorted(self.runner.triggers)}"
                )
            if between is not None:
                maybe = between()
                if maybe is not None:
                    await maybe
            await asyncio.sleep(tick)

    async def shutdown(self) -> None:
        """What the triggerer does on stop: cancel every trigger's task and clean up after them."""
        tasks = [details["task"] for details in self.runner.triggers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.step()
