"""Triggers of one connection under Airflow's real ``TriggerRunner``, finishing in every order.

Deferred inferences and a fan-out batch on the same Theta connection (with a project, so both read
the project listing) share one HTTP client. Whichever finishes first, the others keep a working
client to the end: every trigger fires its one event, nothing logs a closed client, an unclosed
session or an exception nobody retrieved, and when the last trigger is gone so is the client.
The runner is driven as its supervisor drives it (``tests/triggers/triggerer.py``), including the
cancellation of a trigger still running after its event was persisted, and with the triggerer's
comms in place: reading a connection's extras inside a trigger suspends it through greenback until
the supervisor answers, as in a real triggerer. That suspension, inside code that looks synchronous
(building the shared client), is what split one connection's users over several clients and closed
the batch's client under it; a runner without comms (``dag.test``, a plain script) never shows it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.hooks.base import shared_clients
from airflow_provider_edgeinfer.triggers.batch import BatchTrigger
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.airflow_versions import AIRFLOW
from tests.triggers.conftest import submit
from tests.triggers.triggerer import Triggerer

CONN = "edgeinfer_theta_default"
#: Emulated seconds the clock moves per loop turn: requests end in the order of their durations.
STEP = 1.0
POLL = 0.02
#: Log text that means a trigger lost its client, leaked a session or left an error unread.
BAD_LINES = (
    "client has been closed",
    "Unclosed client session",
    "Unclosed connector",
    "Task exception was never retrieved",
    "exited without sending an event",
    "exited with error",
)

#: (name, durations in emulated seconds of each inference request, of the batch's requests).
ORDERS = [
    ("inferences first", [3, 4, 5], [20, 20]),
    ("batch first", [20, 25, 30], [3, 4]),
    ("interleaved", [3, 12, 24], [8, 16]),
    ("together", [6, 6, 6], [6, 6]),
]


def _submit_lasting(emulator: Any, seconds: float, count: int = 1) -> list[str]:
    emulator.state.timing["theta"] = Timing(0.0, seconds)
    return submit(count)


def write_manifest(directory: Path, request_ids: list[str]) -> None:
    from airflow_provider_edgeinfer.batch.manifest import ItemRecord, Manifest
    from airflow_provider_edgeinfer.storage import as_storage_path

    now = time.time()
    Manifest(as_storage_path(str(directory))).write_segment(
        (i, ItemRecord("sub", 0, rid, now)) for i, rid in enumerate(request_ids)
    )


def _triggers(emulator: Any, tmp_path: Path, inference: list[int], batch: list[int]) -> list[Any]:
    deadline = time.time() + 120
    out: list[Any] = [
        InferenceTrigger(
            conn_id=CONN,
            request_id=_submit_lasting(emulator, seconds)[0],
            deadline=deadline,
            poll_interval=POLL,
        )
        for seconds in inference
    ]
    batch_ids = [rid for seconds in batch for rid in _submit_lasting(emulator, seconds)]
    write_manifest(tmp_path, batch_ids)
    out.append(
        BatchTrigger(
            vendor="theta", conn_id=CONN, deadline=deadline, output_path=str(tmp_path), poll_interval=POLL
        )
    )
    return out


def _bad_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(bad in line for bad in BAD_LINES)]


@pytest.mark.parametrize(
    ("inference", "batch"), [(i, b) for _, i, b in ORDERS], ids=[n for n, _, _ in ORDERS]
)
async def test_triggers_of_one_connection_finish_in_any_order(
    theta: Any,
    tmp_path: Path,
    inference: list[int],
    batch: list[int],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    loop_reports: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: loop_reports.append(str(context.get("message"))))
    triggers = _triggers(theta, tmp_path, inference, batch)

    def tick() -> None:
        theta.state.clock.advance(STEP)

    async with Triggerer() as triggerer:
        ids = triggerer.add(triggers)
        await triggerer.run_until_done(seconds=30, tick=POLL, between=tick)
    await asyncio.sleep(0.05)  # closed connections finish their goodbyes
    gc.collect()  # an unclosed session says so when it is collected
    await asyncio.sleep(0)

    out, err = capfd.readouterr()
    logged = "\n".join([out, err, caplog.text, *loop_reports])
    assert not _bad_lines(logged), _bad_lines(logged)
    assert not triggerer.failed, triggerer.failed
    statuses = {i: [e["status"] for e in triggerer.events.get(i, [])] for i in ids}
    assert statuses == {i: ["success"] for i in ids}, statuses
    assert shared_clients.active() == 0 and pollers.active() == 0


async def test_killed_triggers_leave_the_others_their_client(
    theta: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A user kills two deferred inferences mid-wait: their on_kill cancels on a lease of its own."""
    caplog.set_level(logging.INFO)
    triggers = _triggers(theta, tmp_path, [30, 30, 8], [12, 12])

    async with Triggerer() as triggerer:
        ids = triggerer.add(triggers)
        killed = ids[:2]
        start = theta.state.clock.now()

        def tick() -> None:
            theta.state.clock.advance(STEP)
            if theta.state.clock.now() - start > 3 and killed[0] in triggerer.runner.triggers:
                triggerer.runner.to_cancel.extend(killed)  # the user's action, as the supervisor passes it

        await triggerer.run_until_done(seconds=30, tick=POLL, between=tick)
    await shared_clients.drain()

    out, err = capfd.readouterr()
    assert not _bad_lines("\n".join([out, err, caplog.text]))
    assert not triggerer.failed and not any(triggerer.events.get(i) for i in killed)
    statuses = {i: [e["status"] for e in triggerer.events[i]] for i in ids[2:]}
    assert statuses == {i: ["success"] for i in ids[2:]}
    # The kill cancels the vendor requests through the triggers' on_kill, which Airflow calls from 3.3
    # on; before, the killed requests run on at the vendor (docs/compat.md).
    cancelled = len(killed) if Version("3.3") <= AIRFLOW else None
    assert theta.state.snapshot()["cancellations"].get("theta") == cancelled
    assert shared_clients.active() == 0 and pollers.active() == 0
