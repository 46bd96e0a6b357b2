"""The example DAGs against a chaotic vendor: 20 % 5xx, 10 % 429, 5 % drops, latency spikes, 1 % garbage.

Every run must end in success with zero duplicate submissions. Where a vendor offers no way to find
a submission whose answer was lost (OctoAI, OmniTensor), a mangled answer to a submission is an
unknown outcome by nature; those vendors are run with drops and garbage on reads only, and a separate
test shows that a lost submission answer is reported, never repeated.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.dags.conftest import load_dag, task_states

CHAOS = {
    "rate_5xx": 0.20,
    "rate_429": 0.10,
    "retry_after": 0.02,
    "rate_drop": 0.05,
    "rate_slow": 0.05,
    "slow_seconds": 0.05,
    "rate_malformed": 0.01,
}
EXAMPLES = [
    ("theta", "edgeinfer_theta_transcription", "*"),
    ("octoai", "edgeinfer_octoai_sdxl", "GET"),
    ("infrai", "edgeinfer_infrai_chat", "*"),
    ("omnitensor", "edgeinfer_omnitensor_inference", "GET"),
]


@pytest.fixture
def chaotic(emulated: Any) -> Any:
    emulated.state.rng = random.Random(20261123)
    return emulated


@pytest.mark.parametrize(("vendor", "dag_id", "mangle"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_dag_survives_a_chaotic_vendor(
    airflow_db: None, chaotic: Any, tmp_path: Any, vendor: str, dag_id: str, mangle: str
) -> None:
    state = chaotic.state
    state.timing[vendor] = Timing(0.1, 0.3)
    state.faults[vendor].update({**CHAOS, "mangle_methods": mangle})
    # A run makes only a handful of calls, so each fault kind is also scripted to happen at least once.
    reads_only = {} if mangle == "*" else {"method": "GET"}
    script = [
        {"kind": "429", "retry_after": 0.02},
        {"kind": "5xx", "status": 503, "retry_after": 0.02},
        {"kind": "slow", "seconds": 0.05},
    ]
    if vendor != "omnitensor":  # one synchronous call without an idempotency key: nothing safe to mangle
        script = [{"kind": "drop", **reads_only}, {"kind": "malformed", **reads_only}, *script]
    state.scripted[vendor].extend(script)
    conf = {"output_path": str(tmp_path)} if vendor in ("theta", "octoai") else {}
    run = load_dag(dag_id).test(run_conf=conf)
    assert set(task_states(run).values()) == {"success"}
    snapshot = state.snapshot()
    assert snapshot["duplicates"][vendor] == {}
    assert sum(snapshot["submissions"][vendor].values()) >= 1
    assert state.scripted[vendor] == [], "every scripted fault was served"
    assert sum(n for k, n in snapshot["faults_injected"].items() if k.startswith(vendor)) >= len(script)


def test_lost_theta_submission_answer_is_found_not_resubmitted(airflow_db: None, emulated: Any) -> None:
    from tests.dags.test_operator_dags import _dag, _try_numbers

    emulated.state.timing["theta"] = Timing(0.1, 0.3)
    emulated.state.scripted["theta"].append(
        {"kind": "drop", "path": "/infer_request/whisper", "method": "POST"}
    )
    run = _dag("edgeinfer_test_reattach").test()
    assert task_states(run) == {"infer": "success"}
    assert _try_numbers(run) == {"infer": 2}, "try 1 fails on the lost answer; try 2 finds the request"
    snapshot = emulated.state.snapshot()
    assert snapshot["faults_injected"] == {"theta.drop": 1}
    assert list(snapshot["submissions"]["theta"].values()) == [1]
    assert snapshot["requests"]["theta.create_request"] == 1


def test_lost_octoai_submission_answer_is_reported_not_repeated(
    airflow_db: None, emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    from airflow.utils.session import create_session

    emulated.state.scripted["octoai"].append({"kind": "drop", "path": "/generate/sdxl", "method": "POST"})
    dag = load_dag("edgeinfer_octoai_sdxl")
    for task in dag.tasks:
        task.retries = 1
        task.retry_delay = timedelta(seconds=0)
    run = dag.test()
    assert task_states(run) == {"generate": "failed"}
    with create_session() as session:
        assert [ti.try_number for ti in run.get_task_instances(session=session)] == [2]
    # What each try failed with, from the task log (under dag.test it goes to stdout).
    failures = re.findall(
        r"^airflow_provider_edgeinfer\.exceptions\.(\w+): (.*)$", capsys.readouterr().out, re.M
    )
    assert [kind for kind, _ in failures] == ["OutcomeUnknownError", "OutcomeUnknownError"]
    # Try 1: the answer to the submission was lost, and the submission was not repeated.
    assert "was sent but no answer came back" in failures[0][1]
    # Try 2: OctoAI cannot be searched for the request, so the retry refuses to pay again.
    assert "a previous try sent this request but never learned its id" in failures[1][1]
    snapshot = emulated.state.snapshot()
    assert list(snapshot["submissions"]["octoai"].values()) == [1], (
        "an unknown outcome must not be resubmitted"
    )


@pytest.mark.parametrize("vendor", ["theta", "octoai", "infrai", "omnitensor"])
def test_thousand_item_batch_survives_a_chaotic_vendor(
    airflow_db: None, chaotic: Any, tmp_path: Any, vendor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import json
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "dags" / "fixtures" / "edgeinfer_chaos_batch_dags.py"
    spec = importlib.util.spec_from_file_location("edgeinfer_chaos_batch_dags", fixtures)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    state = chaotic.state
    # infrai runs a native batch's items one after another: keep each short.
    state.timing[vendor] = Timing(0.0, 0.002) if vendor == "infrai" else Timing(0.05, 0.2)
    # What a user facing a vendor this flaky does: allow more attempts per call.
    name = f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"
    conn = json.loads(chaotic.connections()[name])
    conn["extra"]["max_retries"] = 10
    monkeypatch.setenv(name, json.dumps(conn))
    mangle = "*" if vendor in ("theta", "infrai") else "GET"
    state.faults[vendor].update({**CHAOS, "mangle_methods": mangle})
    run = getattr(module, f"dag_{vendor}").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1000, "no result lost"
    assert {r["state"] for r in rows} == {"succeeded"}
    snapshot = state.snapshot()
    assert snapshot["duplicates"][vendor] == {}, "nothing submitted twice"
    # A native infrai batch is a handful of calls; a fan-out is thousands.
    floor = 1 if vendor == "infrai" else 50
    assert sum(n for k, n in snapshot["faults_injected"].items() if k.startswith(vendor)) >= floor
