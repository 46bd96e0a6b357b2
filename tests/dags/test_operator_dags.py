"""InferenceOperator and InferenceRequestSensor under real Airflow (dag.test, SQLite) against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.dags.conftest import task_states

FIXTURES = Path(__file__).parent / "fixtures"


def _dag(dag_id: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgeinfer_test_dags", FIXTURES / "edgeinfer_test_dags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def _creates(emulator: Any) -> int:
    return int(emulator.state.snapshot()["requests"].get("theta.create_request", 0))


def _try_numbers(dag_run: Any) -> dict[str, int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


def _xcom(dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        assert row is not None, f"no XCom {key!r} from {task_id}"
        return XComModel.deserialize_value(row)


def test_deferred_inference_succeeds_and_submits_once(airflow_db: None, emulated: Any) -> None:
    emulated.state.timing["theta"] = Timing(0.2, 0.6)
    run = _dag("edgeinfer_test_basic").test()
    assert task_states(run) == {"infer": "success"}
    assert _creates(emulated) == 1
    assert not emulated.state.snapshot()["duplicates"]["theta"]


def _no_client_retries(emulator: Any, monkeypatch: pytest.MonkeyPatch, vendor: str = "theta") -> None:
    """Each call is made once, so an injected fault reaches the operator instead of a client retry."""
    name = f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"
    conn = json.loads(emulator.connections()[name])
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv(name, json.dumps(conn))


def test_retry_reattaches_instead_of_resubmitting(
    airflow_db: None, emulated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_client_retries(emulated, monkeypatch)
    emulated.state.timing["theta"] = Timing(0.2, 1.0)
    # Try 1 submits, records the request id and defers; its first poll gets a 500 that neither the
    # client (no retries) nor the trigger (no tolerance) absorbs, so try 1 fails with the request
    # still running. Try 2 must find it through the task state store and wait on it.
    emulated.state.scripted["theta"].append(
        {"kind": "5xx", "status": 500, "path": "/infer_request/infr_rqst_", "method": "GET"}
    )
    run = _dag("edgeinfer_test_reattach").test()
    assert task_states(run) == {"infer": "success"}
    assert _try_numbers(run) == {"infer": 2}, "the first try must fail, so that a retry happens"
    snapshot = emulated.state.snapshot()
    assert snapshot["faults_injected"] == {"theta.5xx": 1}
    assert list(snapshot["submissions"]["theta"].values()) == [1], "the retry must reattach, not submit again"
    assert _creates(emulated) == 1
    [first] = emulated.state.tables["theta.jobs"]
    assert _xcom(run, "infer", "return_value")["request_id"] == first


def test_failed_vendor_job_fails_the_task(airflow_db: None, emulated: Any) -> None:
    emulated.state.faults["theta"].job_failure_rate = 1.0
    run = _dag("edgeinfer_test_basic").test()
    assert task_states(run) == {"infer": "failed"}
    assert _creates(emulated) == 1


def test_timeout_cancels_the_remote_request(
    airflow_db: None, emulated: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    emulated.state.timing["theta"] = Timing(0.0, 600.0)
    run = _dag("edgeinfer_test_timeout").test()
    assert task_states(run) == {"infer": "failed"}
    assert emulated.state.snapshot()["cancellations"] == {"theta": 1}
    # Why it failed, from the task log (under dag.test it goes to stdout).
    failures = re.findall(
        r"^airflow_provider_edgeinfer\.exceptions\.(\w+): (.*)$", capsys.readouterr().out, re.M
    )
    assert [kind for kind, _ in failures] == ["JobTimeoutError"]
    assert "did not finish within 1 s" in failures[0][1]


def test_blocking_mode_polls_on_the_worker(airflow_db: None, emulated: Any) -> None:
    emulated.state.timing["theta"] = Timing(0.1, 0.4)
    run = _dag("edgeinfer_test_blocking").test()
    assert task_states(run) == {"infer": "success"}
    assert _creates(emulated) == 1


def test_end_from_trigger_under_a_runner_that_resumes_the_task(airflow_db: None, emulated: Any) -> None:
    """dag.test runs the trigger inline, for no task instance: the task resumes on the worker, same result."""
    emulated.state.timing["theta"] = Timing(0.1, 0.3)
    run = _dag("edgeinfer_test_end_from_trigger").test()
    assert task_states(run) == {"ended": "success", "resumed": "success"}
    ended, resumed = (_xcom(run, task, "return_value") for task in ("ended", "resumed"))
    assert set(ended) == set(resumed) and ended["state"] == "succeeded"
    assert ended["output"] is not None and set(ended["output"]) == set(resumed["output"])
    assert ended["request_id"] == _xcom(run, "ended", "request_id")
    assert _creates(emulated) == 2


def test_end_from_trigger_refuses_an_output_path() -> None:
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    with pytest.raises(ValueError, match="end_from_trigger cannot be used with output_path"):
        InferenceOperator(
            task_id="t", conn_id="c", service="whisper", output_path="/tmp/x", end_from_trigger=True
        )


def test_mapped_inference(airflow_db: None, emulated: Any) -> None:
    run = _dag("edgeinfer_test_mapped").test()
    assert task_states(run) == {f"infer[{i}]": "success" for i in range(3)}
    assert _creates(emulated) == 3


def test_sensor_waits_for_a_request_made_elsewhere(airflow_db: None, emulated: Any) -> None:
    emulated.state.timing["theta"] = Timing(0.2, 0.5)
    run = _dag("edgeinfer_test_sensor").test()
    assert task_states(run) == {"start_elsewhere": "success", "wait": "success"}


def test_theta_transcription_example(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    from tests.dags.conftest import load_dag

    run = load_dag("edgeinfer_theta_transcription").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {
        "audio_source": "success",
        "upload_audio": "success",
        "transcription_inputs": "success",
        "transcribe[0]": "success",
    }
    assert emulated.state.snapshot()["requests"]["storage.put"] == 1
    written = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert len(written) == 1
    result = json.loads(written[0].read_text())
    assert result["result"]["service"] == "whisper"
    assert "bytes of audio" in result["output"]["text"]


def test_infrai_chat_example(airflow_db: None, emulated: Any) -> None:
    from tests.dags.conftest import load_dag

    run = load_dag("edgeinfer_infrai_chat").test()
    assert task_states(run) == {"summarize": "success"}
    submissions = emulated.state.snapshot()["submissions"]["infrai"]
    assert sum(submissions.values()) == 1


def test_omnitensor_inference_example(airflow_db: None, emulated: Any) -> None:
    from tests.dags.conftest import load_dag

    run = load_dag("edgeinfer_omnitensor_inference").test()
    assert task_states(run) == {"classify": "success"}
    assert sum(emulated.state.snapshot()["submissions"]["omnitensor"].values()) == 1


def test_octoai_sdxl_example_writes_a_decodable_image(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    from tests.dags.conftest import load_dag

    run = load_dag("edgeinfer_octoai_sdxl").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"generate": "success"}
    images = sorted(tmp_path.glob("*.png"))
    assert len(images) == 1
    assert images[0].read_bytes().startswith(b"\x89PNG")
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["output"]["images"][0]["image_path"] == f"file://{images[0]}"
    assert "image_b64" not in result["output"]["images"][0]
