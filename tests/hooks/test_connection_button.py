"""The UI's Test button: one attempt per call, one time budget for all, and a message that Airflow's
CLI (Rich markup) prints as written."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from rich.console import Console

from airflow_provider_edgeinfer.check import read_only_checks
from airflow_provider_edgeinfer.clients.core import Call
from airflow_provider_edgeinfer.hooks.probe import BudgetSettings, budget_settings, plain, probe_connection
from airflow_provider_edgeinfer.hooks.theta import ThetaHook


@pytest.fixture
def emu_env(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    return edgeinfer_emulator


def as_the_cli_prints(message: str) -> str:
    """What ``airflow connections test`` shows of a failure message (it prints it as Rich markup)."""
    out = io.StringIO()
    Console(file=out, width=1000, color_system=None).print(
        f"[bold][red]\nConnection failed![/bold]\n{message}\n"
    )
    return out.getvalue()


def test_every_call_ends_with_the_budget() -> None:
    call = Call("probe", "GET", "https://x.example/v1", lambda result: result)
    spent = BudgetSettings(call_deadline=10.0, ends_at=time.monotonic() - 1)
    assert spent.limits_of(call)[1] == pytest.approx(0.001)
    fresh = budget_settings(10.0)
    assert 9.0 < fresh.limits_of(call)[1] <= 10.0
    assert fresh.retry.max_attempts == 1


def test_a_slow_vendor_fails_the_check_that_ran_out_of_time_with_one_attempt_each(
    emu_env: Any,
) -> None:
    emu_env.state.faults["theta"].update({"rate_slow": 1.0, "slow_seconds": 0.5})
    ok, message = probe_connection(ThetaHook(), seconds=0.8)
    assert not ok
    assert "call_deadline" in message or "no complete answer" in message, message

    emu_env.state.reset()
    emu_env.state.faults["theta"].update({"rate_slow": 1.0, "slow_seconds": 0.5})
    with ThetaHook(http_settings=budget_settings(0.8)) as probe:
        results = read_only_checks(probe)
    sent = [r for r in results if r.ok is not None]
    assert any(r.ok is False for r in sent)
    # Each check sent its call once: as many slowed requests as checks that sent one.
    assert emu_env.state.snapshot()["faults_injected"]["theta.slow"] == len(sent)


def test_a_wrong_key_message_survives_the_cli(emu_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(emu_env.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])
    conn["password"] = "wrong-theta-key-0005"
    monkeypatch.setenv("AIRFLOW_CONN_THETA_WRONG_CLI", json.dumps(conn))
    ok, message = ThetaHook("theta_wrong_cli").test_connection()
    assert not ok
    assert "AuthenticationError: (theta " in message and "HTTP 401" in message
    shown = as_the_cli_prints(message)
    assert message in shown
    assert "wrong-theta-key-0005" not in shown


def test_an_unusable_connection_says_why_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_TYPO_CLI",
        json.dumps({"conn_type": "edgeinfer_theta", "password": "k" * 20, "extra": {"timeoutt": 5}}),
    )
    ok, message = ThetaHook("theta_typo_cli").test_connection()
    assert not ok
    assert message.startswith(
        "connection: ConfigurationError: (theta) connection 'theta_typo_cli' has an unknown"
    )
    assert "did you mean 'timeout'" in as_the_cli_prints(message)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[octoai list_models] refused", "(octoai list_models) refused"),
        ("field input[0] and [Theta] stay", "field input[0] and [Theta] stay"),
        ("[/x] and [@y] and [#z]", "(/x) and (@y) and (#z)"),
    ],
)
def test_plain_turns_only_rich_tags_into_parentheses(text: str, shown: str) -> None:
    assert plain(text) == shown
    assert shown in as_the_cli_prints(shown)
