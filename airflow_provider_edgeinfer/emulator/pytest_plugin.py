"""Pytest plugin: ``edgeinfer_emulator`` serves the emulator on loopback for a test session.

Installed with the package (entry point ``pytest11``). In a DAG test::

    def test_my_dag(edgeinfer_emulator, monkeypatch):
        for name, value in edgeinfer_emulator.connections().items():
            monkeypatch.setenv(name, value)
        ...

Counters, faults, keys and settings are reset before each test that uses the fixture, and
jobs run instantly (zero timing).

Strict mode (the emulator refuses any request its vendor contract does not allow: unknown body
keys or query parameters, wrong types, an LLM request that would stream unasked) is on when the
fixture ``edgeinfer_emulator_strict`` is true: its default reads ``EDGEINFER_EMULATOR_STRICT=1``
from the environment, and a ``conftest.py`` turns it on for a whole directory with::

    @pytest.fixture
    def edgeinfer_emulator_strict() -> bool:
        return True
"""

from __future__ import annotations

import os
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


#: Environment variable that turns strict mode on for every test (``1``, ``true`` or ``yes``).
STRICT_ENV = "EDGEINFER_EMULATOR_STRICT"
#: Longest a test waits, before its reset, for an earlier test's requests still being handled (a
#: slowed answer lasts ``slow_seconds``, 2 s by default).
IDLE_WAIT_SECONDS = 5.0


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    """Whether the emulator holds requests to the vendor contracts; override it in a conftest."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


@pytest.fixture
def edgeinfer_emulator(
    _edgeinfer_emulator_session: EmulatorServer, edgeinfer_emulator_strict: bool
) -> EmulatorServer:
    from dataclasses import MISSING, fields

    from airflow_provider_edgeinfer.emulator.state import VENDORS, EmulatorState, Timing

    state = _edgeinfer_emulator_session.state
    # An earlier test's request still being handled (a slowed answer its client gave up on) would
    # count in this one; a held answer (minutes) is not waited for.
    state.wait_idle(IDLE_WAIT_SECONDS)
    state.reset()
    # Settings a test may have changed (keys, TTLs) go back to their defaults too.
    for f in fields(EmulatorState):
        if f.name not in ("timing", "faults", "scripted", "seed"):
            setattr(state, f.name, f.default_factory() if f.default_factory is not MISSING else f.default)
    for vendor in VENDORS:
        state.timing[vendor] = Timing(queued=0.0, running=0.0)
    state.strict = edgeinfer_emulator_strict
    return _edgeinfer_emulator_session
