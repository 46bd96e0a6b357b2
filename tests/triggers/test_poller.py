"""The shared poller: coalesced polling, triggers joining and leaving, shared 429 pauses, clean shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_edgeinfer.clients import theta as theta_client
from airflow_provider_edgeinfer.hooks.base import shared_clients
from airflow_provider_edgeinfer.hooks.theta import ThetaHook
from airflow_provider_edgeinfer.triggers import inference as poller_module
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.triggers.conftest import NO_PROJECT, requests_made, submit

LISTING = "edgeinfer_theta_default"
ONE_BY_ONE = NO_PROJECT
MISSING = "infr_rqst_" + "z" * 26


@pytest.fixture(params=[LISTING, ONE_BY_ONE])
def conn_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(
    request_id: str, conn_id: str = LISTING, *, interval: float = 0.02, **kwargs: Any
) -> InferenceTrigger:
    return InferenceTrigger(
        conn_id=conn_id,
        request_id=request_id,
        deadline=kwargs.pop("deadline", time.time() + 30),
        poll_interval=interval,
        **kwargs,
    )


async def first_event(trigger: InferenceTrigger) -> dict[str, Any]:
    events = [dict(event.payload) async for event in trigger.run()]
    assert len(events) == 1
    return events[0]


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def key(conn_id: str) -> str:
    return ThetaHook(conn_id).shared_key


def watching(conn_id: str) -> int:
    poller = pollers.get(key(conn_id))
    return poller.watching if poller is not None else 0


def assert_nothing_left() -> None:
    assert pollers.active() == 0
    assert shared_clients.active() == 0


async def test_each_trigger_gets_its_own_requests_outcome(theta: Any, conn_id: str) -> None:
    ok = submit(6, emulator=theta)
    bad = submit(4, fails=True, emulator=theta)
    gone = submit(3, emulator=theta)
    hook = ThetaHook()
    for request_id in gone:
        hook.run(hook.api.cancel_request(request_id))
    hook.close()
    expected = {rid: "success" for rid in ok} | {rid: "failed" for rid in bad}
    expected |= {rid: "cancelled" for rid in gone} | {MISSING: "error"}
    ids = sorted(expected)  # interleaved, not grouped by outcome
    tasks = {rid: asyncio.create_task(first_event(make(rid, conn_id))) for rid in ids}
    await until(lambda: watching(conn_id) == len(ids) - len(gone) - 1)  # the ended ones already left
    theta.state.clock.advance(601)

    events = {rid: await task for rid, task in tasks.items()}

    for rid, event in events.items():
        assert event["request_id"] == rid
        assert event["status"] == expected[rid], rid
        if rid != MISSING:
            assert event["job"]["request_id"] == rid
    assert events[MISSING]["error"]["type"] == "NotFoundError"
    assert_nothing_left()
    if conn_id == LISTING:
        # Only the request absent from the project listing was read on its own.
        assert requests_made(theta, "get_request") == 1
    else:
        assert requests_made(theta, "list_requests") == 0


async def test_listing_reads_one_page_per_page_size_watched(
    theta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(theta_client, "PAGE_SIZE", 5)
    ids = submit(12, emulator=theta)
    tasks = [asyncio.create_task(first_event(make(rid, interval=0.05))) for rid in ids]
    await until(lambda: watching(LISTING) == 12)
    poller = pollers.get(key(LISTING))
    assert poller is not None
    start_rounds, start_calls = poller.rounds, requests_made(theta, "list_requests")
    # (Before everyone joined, a round watching only the oldest may have read it on its own.)
    start_gets = requests_made(theta, "get_request")
    await until(lambda: poller.rounds >= start_rounds + 3)
    rounds = poller.rounds - start_rounds
    calls = requests_made(theta, "list_requests") - start_calls
    assert calls <= 3 * (rounds + 1)  # ceil(12 / 5) pages a round, never one call per request
    assert requests_made(theta, "get_request") == start_gets
    theta.state.clock.advance(601)
    assert {(await t)["status"] for t in tasks} == {"success"}
    assert_nothing_left()


async def test_requests_past_the_page_budget_are_read_one_by_one(
    theta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(theta_client, "PAGE_SIZE", 5)
    oldest = submit(2, emulator=theta)
    submit(10, emulator=theta)  # newer requests of someone else, listed first
    tasks = [asyncio.create_task(first_event(make(rid))) for rid in oldest]
    await until(lambda: requests_made(theta, "get_request") >= 2)
    theta.state.clock.advance(601)
    events = [await t for t in tasks]
    assert [e["request_id"] for e in events] == oldest
    assert {e["status"] for e in events} == {"success"}
    assert_nothing_left()


async def test_a_cancelled_trigger_leaves_while_the_others_keep_polling(theta: Any, conn_id: str) -> None:
    ids = submit(5, emulator=theta)
    tasks = [asyncio.create_task(first_event(make(rid, conn_id))) for rid in ids]
    await until(lambda: watching(conn_id) == 5)

    tasks[0].cancel()  # e.g. the task was reassigned to another triggerer
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]

    assert watching(conn_id) == 4
    poller = pollers.get(key(conn_id))
    assert poller is not None
    calls = requests_made(theta, "list_requests") + requests_made(theta, "get_request")
    await until(lambda: requests_made(theta, "list_requests") + requests_made(theta, "get_request") > calls)
    theta.state.clock.advance(601)
    assert [(await t)["status"] for t in tasks[1:]] == ["success"] * 4
    # A reassignment is not a kill: the cancelled trigger's request was not cancelled remotely.
    assert theta.state.snapshot()["cancellations"] == {}
    assert_nothing_left()


async def test_a_429_storm_pauses_the_whole_connection_and_loses_nothing(theta: Any, conn_id: str) -> None:
    ids = submit(20, emulator=theta)
    theta.state.faults["theta"].update({"rate_429": 1.0, "retry_after": 0.2})
    tasks = [asyncio.create_task(first_event(make(rid, conn_id))) for rid in ids]
    await until(lambda: watching(conn_id) == 20)
    await asyncio.sleep(0.6)
    poller = pollers.get(key(conn_id))
    assert poller is not None and poller.limiter.throttled_count >= 1
    assert not any(t.done() for t in tasks), "a 429 is not a failure of the request"
    throttled = theta.state.snapshot()["faults_injected"]["theta.429"]
    # Each trigger on its own would have polled about 30 times in 0.6 s (600 answers of 429); sharing
    # the pause, the connection tried about once per Retry-After.
    assert throttled < 150

    theta.state.faults["theta"].update({"rate_429": 0.0})
    theta.state.clock.advance(601)
    events = [await t for t in tasks]
    assert [e["request_id"] for e in events] == ids
    assert {e["status"] for e in events} == {"success"}
    assert_nothing_left()


async def test_first_polls_spread_over_the_interval(theta: Any) -> None:
    ids = submit(40, emulator=theta)
    tasks = [asyncio.create_task(first_event(make(rid, ONE_BY_ONE, interval=1.0))) for rid in ids]
    await until(lambda: watching(ONE_BY_ONE) == 40)
    await asyncio.sleep(0.1)
    assert requests_made(theta, "get_request") < 25  # about 4 expected; 40 if they all polled at once
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert_nothing_left()


def test_shutdown_leaves_no_task_or_connection_behind(theta: Any, conn_id: str) -> None:
    """The triggerer stopping cancels every trigger task of a loop that then closes."""
    ids = submit(10, emulator=theta)
    seen: dict[str, Any] = {}

    async def triggerer() -> None:
        tasks = [asyncio.create_task(first_event(make(rid, conn_id))) for rid in ids]
        await until(lambda: watching(conn_id) == 10)
        await asyncio.sleep(0.05)  # some polls in flight
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        seen["cancelled"] = sum(isinstance(r, asyncio.CancelledError) for r in results)
        seen["tasks"] = asyncio.all_tasks() - {asyncio.current_task()}
        seen["pollers"], seen["clients"] = pollers.active(), shared_clients.active()

    # A loop of its own that closes afterwards: an unclosed session or socket would be an error here.
    thread = threading.Thread(target=lambda: asyncio.run(triggerer()))
    thread.start()
    thread.join(30)
    assert seen == {"cancelled": 10, "tasks": set(), "pollers": 0, "clients": 0}


async def test_a_poller_that_dies_wakes_its_triggers_with_an_error(
    theta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(poller_module.Poller, "_round", broken)
    (request_id,) = submit(1, emulator=theta)
    event = await first_event(make(request_id))
    assert event["status"] == "error"
    assert "poller stopped unexpectedly" in event["error"]["message"]
    assert_nothing_left()
