"""Uploads under real Airflow (dag.test, SQLite): local audio and an S3 glob, uploaded and transcribed."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.airflow_versions import since_airflow
from tests.dags.conftest import task_states
from tests.s3 import CONN_ID, MotoS3

FIXTURES = Path(__file__).parent / "fixtures"


def _dag(dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        "edgeinfer_upload_test_dags", FIXTURES / "edgeinfer_upload_test_dags.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


@pytest.fixture
def s3() -> MotoS3:
    return MotoS3.shared()


def _requests(emulator: Any) -> dict[str, int]:
    return dict(emulator.state.snapshot()["requests"])


@since_airflow("3.3", "The task state store (a retry of a task with uploaded files reattaches)")
def test_retry_of_an_input_files_task_reattaches_without_uploading_again(
    airflow_db: None, emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.session import create_session

    audio = tmp_path / "call.wav"
    audio.write_bytes(random.Random(1).randbytes(123_456))
    emulated.state.timing["theta"] = Timing(0.2, 1.0)
    # The first poll's 500 is neither retried by the client nor tolerated by the trigger: try 1 fails
    # after uploading and submitting, and try 2 must reattach.
    name = "AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"
    conn = json.loads(emulated.connections()[name])
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv(name, json.dumps(conn))
    emulated.state.scripted["theta"].append(
        {"kind": "5xx", "status": 500, "path": "/infer_request/infr_rqst_", "method": "GET"}
    )
    run = _dag("edgeinfer_test_input_files_reattach").test(run_conf={"audio": str(audio)})
    assert task_states(run) == {"transcribe": "success"}
    with create_session() as session:
        assert [ti.try_number for ti in run.get_task_instances(session=session)] == [2]
    requests = _requests(emulated)
    assert emulated.state.snapshot()["faults_injected"] == {"theta.5xx": 1}
    assert requests["theta.create_request"] == 1, "the retry must reattach, not submit again"
    assert requests["storage.put"] == 1 and requests["theta.presigned_urls"] == 1, "nor upload again"
    [job] = emulated.state.tables["theta.jobs"].values()
    assert set(job["input"]) == {"language", "audio_filename"} and job["input"]["language"] == "en"
    assert emulated.state.blobs[job["input"]["audio_filename"]].size == 123_456


def test_local_audio_uploaded_and_transcribed(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    sizes = [50_000, 70_000, 60_000]
    for i, size in enumerate(sizes):
        (tmp_path / f"{i}.wav").write_bytes(random.Random(i).randbytes(size))
    run = _dag("edgeinfer_test_upload_then_transcribe").test(run_conf={"source": f"{tmp_path}/*.wav"})
    states = task_states(run)
    assert set(states.values()) == {"success"} and len(states) == 2 + len(sizes)
    assert _requests(emulated)["storage.put"] == len(sizes)
    texts = _transcripts(run)
    assert [t.rsplit("(", 1)[1] for t in texts] == [f"{s} bytes of audio)" for s in sizes]
    assert [t.split(": ", 1)[0] for t in texts] == [str(tmp_path / f"{i}.wav") for i in range(len(sizes))]


def test_s3_glob_uploaded_and_transcribed(
    airflow_db: None, emulated: Any, s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = s3.bucket("edgeinfer-e2e")
    sizes = {"calls/b.wav": 80_000, "calls/a.wav": 40_000, "calls/skip.txt": 10}
    for key, size in sizes.items():
        bucket.put_object(Bucket="edgeinfer-e2e", Key=key, Body=random.Random(size).randbytes(size))
    run = _dag("edgeinfer_test_upload_then_transcribe").test(
        run_conf={"source": "s3://edgeinfer-e2e/calls/*.wav", "source_conn_id": CONN_ID}
    )
    assert set(task_states(run).values()) == {"success"}
    texts = _transcripts(run)
    assert [t.rsplit("(", 1)[1] for t in texts] == ["40000 bytes of audio)", "80000 bytes of audio)"]
    assert [t.split(": ", 1)[0] for t in texts] == [
        "s3://edgeinfer-e2e/calls/a.wav",
        "s3://edgeinfer-e2e/calls/b.wav",
    ]


def _transcripts(run: Any) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id="transcripts", key="return_value")
            .one()
        )
        value = row.value
    return list(json.loads(value) if isinstance(value, str) else value)
