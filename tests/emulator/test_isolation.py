"""Each test meets an emulator that counts only its own requests, even when an earlier test gave up on
a slowed answer that the emulator was still handling."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_edgeinfer.hooks.probe import probe_connection
from airflow_provider_edgeinfer.hooks.theta import ThetaHook


@pytest.fixture
def slowed(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    edgeinfer_emulator.state.faults["theta"].update({"rate_slow": 1.0, "slow_seconds": 0.4})
    return edgeinfer_emulator


def test_a_request_given_up_on_is_counted_before_the_next_reset(slowed: Any) -> None:
    state = slowed.state
    ok, _ = probe_connection(ThetaHook(), seconds=0.1)  # gives up long before the 0.4 s answer
    assert not ok
    assert state.in_flight >= 1  # the emulator is still handling what the client gave up on

    assert state.wait_idle(5.0)
    state.reset()
    time.sleep(0.5)  # longer than any slowed answer still to come
    assert state.snapshot()["requests"] == {}
