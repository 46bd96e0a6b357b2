"""``python -m airflow_provider_edgeinfer.check`` against the emulator in strict mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_edgeinfer.check import (
    CheckResult,
    checking_hook,
    main,
    read_only_checks,
    summary,
    unknown_fields,
)
from airflow_provider_edgeinfer.hooks.theta import theta_price

VENDORS = ("theta", "octoai", "infrai", "omnitensor")


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    return True


def _conn_id(vendor: str) -> str:
    return f"edgeinfer_{vendor}_default"


def _creations(emulated: Any, vendor: str) -> int:
    return sum(emulated.state.snapshot()["submissions"][vendor].values())


@pytest.mark.parametrize("vendor", VENDORS)
def test_read_only_check_passes_and_spends_nothing(
    vendor: str, emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--conn-id", _conn_id(vendor)]) == 0
    out = capsys.readouterr().out
    assert f"edgeinfer check of connection '{_conn_id(vendor)}': {vendor}" in out
    assert "FAIL" not in out and "result: " in out and " 0 failed" in out
    assert "not asked (--spend-up-to); nothing was billed" in out
    assert "fields the contract does not list" not in out  # the emulator answers the contract
    assert _creations(emulated, vendor) == 0
    snapshot = emulated.state.snapshot()["requests"]
    assert snapshot.get(f"{vendor}.strict_violation", 0) == 0
    assert emulated.state.keys[vendor] not in out


def test_each_vendor_runs_its_own_calls(emulated: Any) -> None:
    names = {}
    for vendor in VENDORS:
        with checking_hook(_conn_id(vendor)) as hook:
            names[vendor] = [r.name for r in read_only_checks(hook)]
    assert names["theta"] == ["services listed (no key needed)", "key accepted (project listing)"]
    assert names["omnitensor"][0] == "key and secret exchanged, balance read"
    requests = emulated.state.snapshot()["requests"]
    assert requests["omnitensor.auth_token"] == 1 and requests["omnitensor.balance"] == 1
    assert requests["infrai.models.list"] == 1 and requests["octoai.list_models"] == 1


def test_wrong_key_fails_without_retrying(
    emulated: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = json.loads(emulated.connections()["AIRFLOW_CONN_EDGEINFER_INFRAI_DEFAULT"])
    conn["password"] = "ifr_pk_proj_wrong_key_value"
    monkeypatch.setenv("AIRFLOW_CONN_EDGEINFER_INFRAI_DEFAULT", json.dumps(conn))
    assert main(["--conn-id", "edgeinfer_infrai_default"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  key accepted (models listed): AuthenticationError: [infrai models.list]" in out
    assert "(HTTP 401, code UNAUTHORIZED)" in out
    assert "ifr_pk_proj_wrong_key_value" not in out
    assert emulated.state.snapshot()["requests"]["infrai.models.list"] == 1  # sent once: no retries


def test_theta_without_project_probes_the_key(
    emulated: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = json.loads(emulated.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])
    conn["extra"] = {}
    monkeypatch.setenv("AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT", json.dumps(conn))
    assert main(["--conn-id", "edgeinfer_theta_default"]) == 0
    out = capsys.readouterr().out
    assert "ok    key accepted: an unknown request id was answered 404, not 401" in out
    assert "skip  project listing: no project_id extra" in out


def test_theta_check_reads_the_newest_request_and_names_its_shape(
    emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    with ThetaHook() as hook:
        created = hook.run(hook.api.create_request("flux", {"prompt": "a cat"})).request
    assert main(["--conn-id", "edgeinfer_theta_default"]) == 0
    out = capsys.readouterr().out
    assert f"ok    one request read: {created.id}: success" in out
    assert "shape: one request came as body.infer_requests[0]" in out


def test_paid_check_spends_once_within_the_limit(emulated: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--conn-id", "edgeinfer_theta_default", "--spend-up-to", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "ok    paid inference:" in out and "success" in out
    assert "cost: $0.000300" in out
    assert _creations(emulated, "theta") == 1
    assert emulated.state.snapshot()["requests"].get("theta.strict_violation", 0) == 0


def test_paid_check_on_infrai_uses_the_cheapest_estimate(
    emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--conn-id", "edgeinfer_infrai_default", "--spend-up-to", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "ok    paid inference: gpt-4o-mini" in out and "cost: $0.0" in out
    assert "fields the contract does not list" not in out
    assert _creations(emulated, "infrai") == 1


@pytest.mark.parametrize(("vendor", "limit"), [("theta", "0.00001"), ("octoai", "1"), ("omnitensor", "1")])
def test_paid_check_refuses_without_a_price_within_the_limit(
    vendor: str, limit: str, emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--conn-id", _conn_id(vendor), "--spend-up-to", limit]) == 1
    out = capsys.readouterr().out
    assert "skip  paid inference: refused:" in out and "nothing was sent" in out
    assert _creations(emulated, vendor) == 0


def test_unusable_connection_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_EDGEINFER_BROKEN", json.dumps({"conn_type": "http", "host": "example.com"})
    )
    assert main(["--conn-id", "edgeinfer_broken"]) == 2
    assert "not an edgeinfer connection" in capsys.readouterr().err


def test_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        main(["--conn-id", "x", "--spend-up-to", "nan"])
    with pytest.raises(SystemExit):
        main(["--conn-id", "x", "--spend-up-to", "-1"])


def test_unknown_fields_are_found_at_every_level() -> None:
    from airflow_provider_edgeinfer.clients.core import Page
    from airflow_provider_edgeinfer.clients.theta import Service

    service = Service.model_validate(
        {
            "id": "s",
            "alias": "a",
            "tier": "gold",
            "predictions": {"p": {"input_vars": [{"name": "x", "hint": 1}]}},
        }
    )
    assert unknown_fields(Page([service], None, 1)) == [
        "items[].predictions.p.input_vars[].hint",
        "items[].tier",
    ]
    assert unknown_fields(Service.model_validate({"id": "s", "alias": "a"})) == []


def test_theta_price_reads_the_assumed_cost_object() -> None:
    assert theta_price({"per_request_usd": 0.002}) == 0.002
    assert theta_price(0.5) == 0.5
    assert theta_price({"credits": 3}) is None and theta_price(None) is None and theta_price(True) is None


def test_summary_names_failures_first() -> None:
    results = [CheckResult("a", True, "fine"), CheckResult("b", False, "AuthenticationError: no")]
    assert summary(results) == "b: AuthenticationError: no"
    assert summary(results[:1]) == "a: fine"
