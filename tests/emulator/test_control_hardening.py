"""The control plane cannot be driven from a web page: a cross-site form post is refused (415) before it
changes anything, and the connection URLs it hands out name the address the emulator is bound to,
whatever Host header the request carried."""

from __future__ import annotations

import json
import shlex
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import Faults

#: Every control endpoint that changes state, with a body it would accept as JSON.
POSTS: list[tuple[str, dict[str, Any]]] = [
    ("faults", {"vendor": "theta", "rate_429": 1}),
    ("clock", {"advance": 3600}),
    ("timing", {"vendor": "theta", "queued": 99}),
    ("settings", {"presign_ttl": 1}),
    ("reset", {}),
    ("uploads/drop", {}),
]
#: What an HTML form (or a "simple" cross-site fetch) can send without a preflight.
FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", None]


@pytest.mark.parametrize("content_type", FORM_TYPES, ids=["urlencoded", "multipart", "text-plain", "none"])
@pytest.mark.parametrize(("path", "body"), POSTS, ids=[p for p, _ in POSTS])
def test_a_control_post_that_is_not_json_is_refused(
    edgeinfer_emulator: EmulatorServer, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    state = edgeinfer_emulator.state
    state.count("theta", "marker")  # a reset would clear it
    clock = state.clock.now()
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(
        f"{edgeinfer_emulator.url}/_emulator/{path}", content=json.dumps(body), headers=headers, timeout=10
    )
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]
    assert state.faults["theta"] == Faults()
    assert state.clock.now() - clock < 60
    assert state.timing["theta"].queued == 0.0
    assert state.snapshot()["requests"].get("theta.marker") == 1


@pytest.mark.parametrize(("path", "body"), POSTS, ids=[p for p, _ in POSTS])
def test_the_same_post_as_json_is_accepted(
    edgeinfer_emulator: EmulatorServer, path: str, body: dict[str, Any]
) -> None:
    if path == "clock":
        body = {"advance": 0}  # the session's clock is shared: accepted, but not moved
    response = httpx.post(
        f"{edgeinfer_emulator.url}/_emulator/{path}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_a_json_post_with_a_broken_body_is_a_400(edgeinfer_emulator: EmulatorServer) -> None:
    response = httpx.post(
        f"{edgeinfer_emulator.url}/_emulator/faults",
        content=b'{"vendor": "theta", "rate_429"',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_connection_urls_name_the_bound_address_not_the_host_header(
    edgeinfer_emulator: EmulatorServer,
) -> None:
    response = httpx.get(
        f"{edgeinfer_emulator.url}/_emulator/connections",
        headers={"Host": "attacker.example:443"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "attacker" not in response.text
    hosts = []
    for line in response.text.strip().splitlines():
        value = shlex.split(line)[1].partition("=")[2]
        hosts.append(json.loads(value)["host"])
    vendors = ("theta", "octoai", "infrai", "omnitensor")
    assert sorted(hosts) == sorted(edgeinfer_emulator.vendor_url(v) for v in vendors)
