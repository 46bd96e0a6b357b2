"""A hostile vendor behind a trigger: the key never reaches the trigger event or the triggerer's log."""

from __future__ import annotations

import gc
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_edgeinfer.triggers import inference as poller_module
from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger, pollers
from tests.clients.hostile_server import Hostile, Reply, serving

KEY = "sk-theta-hostile-SUPERSECRET-42"
REQUEST_ID = "infr_rqst_" + "a" * 26
CONN_ID = "theta_hostile"


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], Hostile]]:
    yield from serving()


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at INFO (a triggerer's default), ours and asyncio's at DEBUG."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_edgeinfer")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    return caplog


def connect(monkeypatch: pytest.MonkeyPatch, server: Hostile, project: str | None) -> None:
    extra: dict[str, Any] = {"max_retries": 0}
    if project:
        extra["project_id"] = project
    conn = {"conn_type": "edgeinfer_theta", "host": "127.0.0.1", "port": server.port, "password": KEY}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({**conn, "extra": extra}))


async def events_of(trigger: InferenceTrigger) -> list[dict[str, Any]]:
    return [dict(event.payload) async for event in trigger.run()]


def trigger(deadline: float = 5.0) -> InferenceTrigger:
    return InferenceTrigger(
        conn_id=CONN_ID,
        request_id=REQUEST_ID,
        deadline=time.time() + deadline,
        poll_interval=0.02,
        max_transient_failures=1,
    )


def assert_secret_free(events: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # asyncio logs a task's unretrieved exception when the task is collected
    for text in (json.dumps(events, default=str), caplog.text):
        assert KEY not in text
        assert "Bearer" not in text


def oversized_header(server: Hostile) -> Reply:
    """An answer aiohttp cannot parse: its error's repr carries the request's headers."""

    def reply(conn: socket.socket, head: bytes) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10240 + b"\r\nContent-Length: 2\r\n\r\n{}")

    return reply


@pytest.mark.parametrize("project", ["prj_hostile", None], ids=["listing", "one-by-one"])
async def test_an_unparsable_answer_ends_the_trigger_with_a_safe_error(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture, project: str | None
) -> None:
    server = serve(lambda conn, head: None)
    server.reply = oversized_header(server)
    connect(monkeypatch, server, project)
    events = await events_of(trigger())
    assert KEY.encode() in server.requests[0]  # the key went out: its absence below means something
    assert [event["status"] for event in events] == ["error"]
    assert events[0]["error"]["type"] == "VendorTimeoutError"
    assert "ClientResponseError" in events[0]["error"]["message"]
    assert_secret_free(events, caplog_all)
    assert pollers.active() == 0


class LeakyError(Exception):
    """A foreign error whose text and repr quote a request's headers, as aiohttp's do."""

    def __init__(self) -> None:
        super().__init__(f"headers={{'Authorization': 'Bearer {KEY}'}}")


async def test_a_poller_killed_by_a_foreign_error_wakes_triggers_without_its_text(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Any) -> None:
        raise LeakyError

    monkeypatch.setattr(poller_module.Poller, "_round", broken)
    connect(monkeypatch, serve(lambda conn, head: None), "prj_hostile")
    events = await events_of(trigger())
    assert [event["status"] for event in events] == ["error"]
    assert "poller stopped unexpectedly: LeakyError" in events[0]["error"]["message"]
    assert_secret_free(events, caplog_all)


async def test_a_poll_task_that_fails_is_retrieved_and_logged_without_its_text(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Any, request_id: str) -> None:
        raise LeakyError

    monkeypatch.setattr(poller_module.Poller, "_poll_one", broken)
    connect(monkeypatch, serve(lambda conn, head: None), None)
    events = await events_of(trigger(deadline=0.5))
    assert [event["status"] for event in events] == ["timeout"]
    assert "a poll failed with LeakyError" in caplog_all.text
    assert "never retrieved" not in caplog_all.text
    assert_secret_free(events, caplog_all)


async def test_a_foreign_error_from_the_client_fails_the_poll_by_its_class_alone(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_edgeinfer.clients.transport import AsyncClient

    async def leaky(self: Any, call: Any) -> Any:
        raise LeakyError

    monkeypatch.setattr(AsyncClient, "send_once", leaky)
    connect(monkeypatch, serve(lambda conn, head: None), None)
    events = await events_of(trigger())
    assert [event["status"] for event in events] == ["error"]
    assert "failed with LeakyError" in events[0]["error"]["message"]
    assert_secret_free(events, caplog_all)
