"""Pytest plugin: ``edgeinfer_emulator`` serves the emulator on loopback for a test session.

Installed with the package (entry point ``pytest11``). In a DAG test::

    def test_my_dag(edgeinfer_emulator, monkeypatch):
        for name, value in edgeinfer_emulator.connections().items():
            monkeypatch.setenv(name, value)
        ...

Counters, faults, keys and settings are reset before each test that uses the fixture, and
jobs run instantly (zero timing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.emulator.server import EmulatorServer


@pytest.fixture(scope="session")
def _edgeinfer_emulator_session() -> Iterator[EmulatorServer]:
    from airflow_provider_edgeinfer.emulator.server import EmulatorServer

    with EmulatorServer() as server:
        yield server


@pytest.fixture
def edgeinfer_emulator(_edgeinfer_emulator_session: EmulatorServer) -> EmulatorServer:
    from dataclasses import MISSING, fields

    from airflow_provider_edgeinfer.emulator.state import VENDORS, EmulatorState, Timing

    state = _edgeinfer_emulator_session.state
    state.reset()
    # Settings a test may have changed (keys, TTLs) go back to their defaults too.
    for f in fields(EmulatorState):
        if f.name not in ("timing", "faults", "scripted", "seed"):
            setattr(state, f.name, f.default_factory() if f.default_factory is not MISSING else f.default)
    for vendor in VENDORS:
        state.timing[vendor] = Timing(queued=0.0, running=0.0)
    return _edgeinfer_emulator_session
