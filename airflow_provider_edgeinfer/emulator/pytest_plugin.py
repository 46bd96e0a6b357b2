"""Pytest plugin: ``edgeinfer_emulator`` serves the emulator on loopback for a test session.

Installed with the package (entry point ``pytest11``). In a DAG test::

    def test_my_dag(edgeinfer_emulator, monkeypatch):
        for name, value in edgeinfer_emulator.connections().items():
            monkeypatch.setenv(name, value)
        ...

Counters, faults and timing are reset before each test that uses the fixture.
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
    from airflow_provider_edgeinfer.emulator.state import VENDORS, Timing

    state = _edgeinfer_emulator_session.state
    state.reset()
    for vendor in VENDORS:
        state.timing[vendor] = Timing(queued=0.0, running=0.0)
    return _edgeinfer_emulator_session
