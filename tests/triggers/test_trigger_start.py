"""Nothing blocks the triggerer's loop when many triggers start at once.

A new triggerer picking up its share starts hundreds of triggers in one go. Here 200 triggers of one
connection (inferences and batches) are handed to Airflow's ``TriggerRunner`` together, with the
triggerer's comms in place (``tests/triggers/triggerer.py``), and the longest single step the loop
runs meanwhile is measured (as asyncio's debug mode times slow callbacks). No step may hold the loop
for long: a connection lookup, client set-up, manifest reading or module import done synchronously
in ``run()`` would show here. The last test proves the measure catches a trigger that blocks.

Not the triggerer's own watchdog: it measures a sleep's lateness (on a loaded machine every wake-up
is late), and its first warning itself holds the loop while it loads the metrics registry.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.hooks.base import shared_clients
from airflow_provider_edgeinfer.hooks.theta import ThetaHook
from airflow_provider_edgeinfer.triggers.batch import BatchTrigger
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.triggers.conftest import submit
from tests.triggers.test_triggerer_lifecycle import CONN, write_manifest
from tests.triggers.triggerer import Triggerer

TRIGGERS = 200
BATCHES = 10
#: Longest one step may hold the loop while they start (the triggerer warns from 0.2 s by default).
MAX_LAG = 0.2


def _fleet(tmp_path: Path) -> list[Any]:
    request_ids = submit(20)
    deadline = time.time() + 120
    fleet: list[Any] = [
        InferenceTrigger(
            conn_id=CONN,
            request_id=request_ids[i % len(request_ids)],
            deadline=deadline,
            poll_interval=0.05,
        )
        for i in range(TRIGGERS - BATCHES)
    ]
    for b in range(BATCHES):
        directory = tmp_path / f"batch{b}"
        write_manifest(directory, request_ids[b::BATCHES])
        fleet.append(
            BatchTrigger(
                vendor="theta",
                conn_id=CONN,
                deadline=deadline,
                output_path=str(directory),
                poll_interval=0.05,
            )
        )
    return fleet


class LongestStep:
    """The longest single step the loop ran (a task resuming until its next await, a callback).

    Per step, as asyncio's debug mode measures slow callbacks, rather than the lateness of a probe's
    sleep: a busy machine delays every wake-up, but only a blocking step holds the loop by itself.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.what = ""
        self._patch = pytest.MonkeyPatch()
        run = asyncio.events.Handle._run
        clock = time.perf_counter

        def timed(handle: asyncio.events.Handle) -> None:
            started = clock()
            try:
                run(handle)
            finally:
                took = clock() - started
                if took > self.seconds:
                    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
                    self.seconds = took
                    self.what = owner.get_name() if isinstance(owner, asyncio.Task) else repr(handle)[:200]

        self._patch.setattr(asyncio.events.Handle, "_run", timed)

    def stop(self) -> None:
        self._patch.undo()


async def _longest_step_while_starting(theta: Any, tmp_path: Path) -> LongestStep:
    """Start the fleet, let it poll, end every request; returns the loop's longest step meanwhile."""
    theta.state.timing["theta"] = Timing(0.0, 600.0)
    fleet = _fleet(tmp_path)
    async with Triggerer() as triggerer:
        longest = LongestStep()
        try:
            ids = triggerer.add(fleet)
            started = time.monotonic()
            while time.monotonic() - started < 1.0:  # every trigger starts and polls a few rounds
                await triggerer.step()
                await asyncio.sleep(0.02)
        finally:
            longest.stop()
        theta.state.clock.advance(600)
        await triggerer.run_until_done(seconds=30)
    assert sorted(triggerer.events) == ids and not triggerer.failed
    assert {e[0]["status"] for e in triggerer.events.values()} == {"success"}
    await shared_clients.drain()
    assert shared_clients.active() == 0 and pollers.active() == 0
    return longest


async def test_starting_200_triggers_never_holds_the_loop(theta: Any, tmp_path: Path) -> None:
    longest = await _longest_step_while_starting(theta, tmp_path)

    assert longest.seconds < MAX_LAG, f"the loop was held {longest.seconds:.3f} s by {longest.what}"


async def test_the_measure_catches_a_trigger_that_blocks_on_start(
    theta: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_api = ThetaHook.build_api

    def slow_build_api(self: ThetaHook, conn: Any) -> Any:
        time.sleep(MAX_LAG + 0.05)  # what a blocking lookup or heavy import on start costs
        return build_api(self, conn)

    monkeypatch.setattr(ThetaHook, "build_api", slow_build_api)
    longest = await _longest_step_while_starting(theta, tmp_path)

    assert longest.seconds >= MAX_LAG and longest.what.startswith("ID "), longest.what
