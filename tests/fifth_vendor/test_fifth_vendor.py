"""A vendor the package has never heard of runs through the operators and sensors, deferred.

It is registered the way a provider's hooks are looked up (``hooks.HOOKS`` by connection type, on
the worker and in the triggerer alike), only for the test. It declares no capability, so
this also proves the neutral layers fall back on ``status`` polling when a vendor lists nothing,
finds no lost submissions and runs no native batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fifth_vendor.api import KEY, FakeVendorServer
from tests.fifth_vendor.hook import CONN_TYPE, HOOK_PATH, VENDOR


@pytest.fixture
def fifth_vendor(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    from airflow_provider_edgeinfer import hooks

    with FakeVendorServer() as server:
        monkeypatch.setitem(hooks.HOOKS, CONN_TYPE, (VENDOR, HOOK_PATH))
        conn = {"conn_type": CONN_TYPE, "host": server.url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_EDGEINFER_FIFTH_DEFAULT", json.dumps(conn))
        yield server


def test_the_hook_is_found_by_connection_type(fifth_vendor: FakeVendorServer) -> None:
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection
    from tests.fifth_vendor.hook import FifthHook

    hook = hook_for_connection("edgeinfer_fifth_default")
    assert type(hook) is FifthHook
    with hook:
        job = hook.run(hook.api.submit("echo-1", {"text": "hi"}))
    assert (job.vendor, job.state.value) == ("fifth", "queued")
    # It declares nothing, so it can do nothing beyond submit, status and cancel.
    assert not hook.api.lists_request_states
    assert not hook.api.runs_native_batches
    assert not hook.api.upload_kinds
    assert not hook.finds_lost_submissions


def test_every_operator_and_sensor_runs_it(
    airflow_db: None, fifth_vendor: FakeVendorServer, tmp_path: Path
) -> None:
    from airflow.utils.session import create_session

    from tests.fifth_vendor.dags import INPUTS, fifth_vendor_dag

    run = fifth_vendor_dag().test(run_conf={"output_path": str(tmp_path)})
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
    assert states == dict.fromkeys(
        ["infer", "batch", "watch_batch", "start_elsewhere", "watch_request"], "success"
    )

    single = [json.loads(p.read_text()) for p in (tmp_path / "single").glob("*.json")]
    assert [r["output"] for r in single] == [{"model": "echo-1", "echo": {"text": "hello"}}]

    rows = [json.loads(line) for line in (tmp_path / "batch" / "results.jsonl").read_text().splitlines()]
    assert [row["state"] for row in sorted(rows, key=lambda r: r["index"])] == [
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
    ]
    by_index = {row["index"]: row for row in rows}
    assert by_index[0]["output"] == {"model": "echo-1", "echo": INPUTS[0]}
    assert "refused this input" in by_index[2]["error"]["message"]

    calls: Any = fifth_vendor.vendor.calls
    # One submission per inference and per batch item, never a second one: nothing was paid twice.
    assert calls["submit"] == 1 + len(INPUTS) + 1
    assert calls["stop"] == 0
    assert len(fifth_vendor.vendor.runs) == calls["submit"]
