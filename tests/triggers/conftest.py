"""Theta triggers against the emulator over loopback, with and without a project (listing or GETs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.hooks.theta import ThetaHook

#: A connection to the emulator's Theta without a project id: the poller reads requests one by one.
NO_PROJECT = "theta_no_project"


@pytest.fixture
def theta(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The emulator with Theta jobs that run until the test moves the clock (or 0 s if it sets so)."""
    connections = edgeinfer_emulator.connections()
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    conn = json.loads(connections["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])
    conn["extra"] = {}
    monkeypatch.setenv(f"AIRFLOW_CONN_{NO_PROJECT.upper()}", json.dumps(conn))
    edgeinfer_emulator.state.timing["theta"] = Timing(0.0, 600.0)
    yield edgeinfer_emulator


def submit(count: int, *, fails: bool = False, emulator: Any = None) -> list[str]:
    """Create ``count`` Theta requests (from a worker's point of view: blocking)."""
    if emulator is not None:
        emulator.state.faults["theta"].job_failure_rate = 1.0 if fails else 0.0
    hook = ThetaHook()
    try:
        return [
            hook.run(hook.api.create_request("llama_3_1_70b", {"messages": [], "stream": False})).request.id
            for _ in range(count)
        ]
    finally:
        hook.close()
        if emulator is not None:
            emulator.state.faults["theta"].job_failure_rate = 0.0


def requests_made(emulator: Any, operation: str) -> int:
    return int(emulator.state.snapshot()["requests"].get(f"theta.{operation}", 0))
