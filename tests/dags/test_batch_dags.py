"""BatchOperator, BatchTrigger and BatchSensor end to end: dag.test(), the emulator, moto S3."""

from __future__ import annotations

import json
import math
import struct
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.dags.conftest import load_dag, task_states

FIXTURES = Path(__file__).parent / "fixtures"


def _dag(dag_id: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "edgeinfer_batch_test_dags", FIXTURES / "edgeinfer_batch_test_dags.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _creates(emulator: Any, vendor: str = "theta") -> int:
    return sum(emulator.state.snapshot()["submissions"][vendor].values())


def _wav(n: int) -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(
            b"".join(struct.pack("<h", int(5000 * math.sin(i * (200 + n) / 8000))) for i in range(800))
        )
    return buffer.getvalue()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 on loopback, reached through the ``aws_default`` connection."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="edgeinfer-audio")
    try:
        yield client
    finally:
        server.stop()


def test_bulk_transcription_backfill_from_and_to_s3(airflow_db: None, emulated: Any, s3: Any) -> None:
    for n in range(200):
        s3.put_object(Bucket="edgeinfer-audio", Key=f"audio/dt=2026-11-21/call-{n:03d}.wav", Body=_wav(n))
    # Another day's files are not this run's: the data interval picks the partition read.
    s3.put_object(Bucket="edgeinfer-audio", Key="audio/dt=2026-11-22/call-000.wav", Body=_wav(0))
    run = load_dag("edgeinfer_bulk_transcription_backfill").test(
        logical_date=datetime(2026, 11, 21, tzinfo=UTC),
        run_conf={
            "audio_root": "s3://aws_default@edgeinfer-audio/audio",
            "output_root": "s3://aws_default@edgeinfer-audio/transcripts/",
        },
    )
    assert task_states(run) == {"audio_files": "success", "transcribe": "success"}
    key = "transcripts/dt=2026-11-21/results.jsonl"
    body = s3.get_object(Bucket="edgeinfer-audio", Key=key)["Body"].read()
    rows = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == 200 and all(r["state"] == "succeeded" for r in rows)
    assert {r["input_ref"] for r in rows} == {
        f"s3://edgeinfer-audio/audio/dt=2026-11-21/call-{n:03d}.wav" for n in range(200)
    }
    assert all("bytes of audio" in r["output"]["text"] for r in rows)
    assert _creates(emulated) == 200
    assert not emulated.state.snapshot()["duplicates"]["theta"]
    failures = s3.get_object(Bucket="edgeinfer-audio", Key="transcripts/dt=2026-11-21/failures.jsonl")[
        "Body"
    ].read()
    assert failures == b""


def test_bulk_transcription_backfill_runs_locally_as_it_is(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = load_dag("edgeinfer_bulk_transcription_backfill").test(
        logical_date=datetime(2026, 11, 21, tzinfo=UTC),
        run_conf={"sample_count": 12, "output_root": str(tmp_path)},
    )
    assert task_states(run) == {"audio_files": "success", "transcribe": "success"}
    assert [p.name for p in tmp_path.iterdir()] == ["dt=2026-11-21"]
    assert len(_rows(tmp_path / "dt=2026-11-21" / "results.jsonl")) >= 12


def test_catalog_image_backfill_writes_images(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    run = load_dag("edgeinfer_catalog_image_backfill").test(
        logical_date=datetime(2026, 11, 21, 2, tzinfo=UTC),
        run_conf={"sample_count": 10, "output_root": str(tmp_path)},
    )
    assert task_states(run) == {"prompts": "success", "generate_images": "success"}
    partition = tmp_path / "dt=2026-11-21"
    rows = _rows(partition / "results.jsonl")
    assert sorted(r["custom_id"] for r in rows) == [f"sku-{n:04d}" for n in range(10)]
    images = sorted((partition / "media").glob("*.png"))
    assert len(images) == 10 and all(p.read_bytes().startswith(b"\x89PNG") for p in images)
    assert sum(emulated.state.snapshot()["submissions"]["octoai"].values()) == 10


def test_a_manual_run_without_logical_date_writes_the_partition_of_its_day(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = load_dag("edgeinfer_catalog_image_backfill").test(
        run_after=datetime(2026, 11, 21, 9, tzinfo=UTC),
        logical_date=None,
        run_conf={"sample_count": 2, "output_root": str(tmp_path)},
    )
    assert task_states(run) == {"prompts": "success", "generate_images": "success"}
    assert [p.name for p in tmp_path.iterdir()] == ["dt=2026-11-21"]


def test_infrai_native_batch_with_budget_export_and_retention(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = load_dag("edgeinfer_infrai_native_batch").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"classify_tickets": "success"}
    requests = emulated.state.snapshot()["requests"]
    assert requests["infrai.batch.submit"] == 1
    assert requests["infrai.cost.estimate"] >= 1
    assert requests["infrai.batch.set_retention"] == 1
    rows = _rows(tmp_path / "results.jsonl")
    assert len(rows) == 40 and rows[0]["custom_id"] == "ticket-000" and rows[0]["cost_usd"] > 0
    export = (tmp_path / "export.jsonl").read_text().splitlines()
    assert len(export) == 40


def test_infrai_batch_over_budget_is_refused_before_submission(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = load_dag("edgeinfer_infrai_native_batch").test(
        run_conf={"output_path": str(tmp_path), "max_cost_usd": 1e-9}
    )
    assert task_states(run) == {"classify_tickets": "failed"}
    requests = emulated.state.snapshot()["requests"]
    assert requests.get("infrai.batch.submit", 0) == 0
    assert requests["infrai.cost.estimate"] >= 1


def test_partial_failure_within_max_failed_ratio_succeeds(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    emulated.state.faults["theta"].job_failure_rate = 0.3
    run = _dag("edgeinfer_test_batch_theta_tolerant").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    rows = _rows(tmp_path / "results.jsonl")
    failures = _rows(tmp_path / "failures.jsonl")
    assert len(rows) == 40
    assert [r for r in rows if r["state"] == "failed"] == failures
    assert all(f["error"]["message"] for f in failures)


def test_partial_failure_beyond_max_failed_ratio_fails_after_writing_everything(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    emulated.state.faults["theta"].job_failure_rate = 0.3
    run = _dag("edgeinfer_test_batch_theta").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "failed"}
    rows = _rows(tmp_path / "results.jsonl")
    assert len(rows) == 40
    assert len(_rows(tmp_path / "failures.jsonl")) == sum(r["state"] == "failed" for r in rows) > 0


def test_item_retries_resubmit_only_failed_items(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    emulated.state.faults["theta"].job_failure_rate = 0.4
    run = _dag("edgeinfer_test_batch_theta_retries").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    header = json.loads((tmp_path / "_edgeinfer" / "batch.json").read_text())
    retried = sum(len(r["indices"]) for r in header["rounds"][1:])
    assert len(header["rounds"]) >= 2 and retried > 0
    # Exactly the first round plus the retried items were created, nothing else.
    assert _creates(emulated) == 20 + retried


def test_infrai_item_retries_submit_follow_up_batches(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    emulated.state.faults["infrai"].job_failure_rate = 0.4
    run = _dag("edgeinfer_test_batch_infrai_retries").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    header = json.loads((tmp_path / "_edgeinfer" / "batch.json").read_text())
    assert len(header["rounds"]) >= 2
    assert emulated.state.snapshot()["requests"]["infrai.batch.submit"] == len(header["rounds"])
    rows = _rows(tmp_path / "results.jsonl")
    assert sorted(r["index"] for r in rows) == list(range(20))


def test_faults_during_fan_out_and_polling_lose_and_duplicate_nothing(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    faults = emulated.state.faults["theta"]
    faults.rate_429, faults.rate_5xx, faults.rate_drop, faults.rate_malformed = 0.15, 0.1, 0.05, 0.03
    faults.retry_after = 0.05
    run = _dag("edgeinfer_test_batch_theta").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    injected = emulated.state.snapshot()["faults_injected"]
    assert injected.get("theta.429") and injected.get("theta.drop")
    rows = _rows(tmp_path / "results.jsonl")
    assert sorted(int(r["custom_id"]) for r in rows) == list(range(40))
    assert all(r["state"] == "succeeded" for r in rows)
    assert _creates(emulated) == 40
    assert not emulated.state.snapshot()["duplicates"]["theta"]


def test_timeout_cancels_unfinished_requests_and_writes_results(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    emulated.state.timing["theta"] = Timing(0.0, 600.0)
    run = _dag("edgeinfer_test_batch_theta_timeout").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "failed"}
    assert emulated.state.snapshot()["cancellations"] == {"theta": 5}
    rows = _rows(tmp_path / "results.jsonl")
    assert len(rows) == 5 and all(r["state"] == "failed" for r in rows)


def test_task_retry_resumes_instead_of_resubmitting(
    airflow_db: None, emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.session import create_session

    # The first poll's 500 is neither retried by the client nor tolerated by the trigger, so try 1
    # fails after its fan-out and try 2 must resume from the manifest.
    name = "AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"
    conn = json.loads(emulated.connections()[name])
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv(name, json.dumps(conn))
    emulated.state.timing["theta"] = Timing(0.0, 0.5)
    # The project's request listing is what the trigger polls (the service list is read before sending).
    emulated.state.scripted["theta"].append(
        {"kind": "5xx", "status": 500, "path": "/infer_request/prj_emulator/list", "method": "GET"}
    )
    run = _dag("edgeinfer_test_batch_retry_task").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    with create_session() as session:
        assert [ti.try_number for ti in run.get_task_instances(session=session)] == [2]
    assert emulated.state.snapshot()["faults_injected"] == {"theta.5xx": 1}
    assert _creates(emulated) == 10
    assert not emulated.state.snapshot()["duplicates"]["theta"]


def test_jsonl_inputs_with_custom_ids(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    lines = [
        {"custom_id": f"call-{n}", "input": {"audio_filename": f"https://example.invalid/{n}.wav"}}
        for n in range(5)
    ]
    (tmp_path / "inputs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    run = _dag("edgeinfer_test_batch_jsonl").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    rows = _rows(tmp_path / "out" / "results.jsonl")
    assert sorted(r["custom_id"] for r in rows) == [f"call-{n}" for n in range(5)]
    assert {r["input_ref"] for r in rows} == {f"file://{tmp_path}/inputs.jsonl:{n}" for n in range(1, 6)}


def test_malformed_jsonl_fails_before_submitting(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    (tmp_path / "inputs.jsonl").write_text('{"audio_filename": "a"}\n{"audio_filename": \n')
    run = _dag("edgeinfer_test_batch_jsonl").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "failed"}
    assert _creates(emulated) == 0


def test_omnitensor_fan_out_is_the_inference(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    run = _dag("edgeinfer_test_batch_omnitensor").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    rows = _rows(tmp_path / "results.jsonl")
    assert sorted(r["custom_id"] for r in rows) == sorted(f"review-{n}" for n in range(15))
    assert all(r["output"] for r in rows)
    assert sum(emulated.state.snapshot()["submissions"]["omnitensor"].values()) == 15


def test_omnitensor_item_retries_send_refused_items_again(
    airflow_db: None, emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One attempt per call: a refused inference is refused for the item, and only item_retries help.
    name = "AIRFLOW_CONN_EDGEINFER_OMNITENSOR_DEFAULT"
    conn = json.loads(emulated.connections()[name])
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv(name, json.dumps(conn))
    # Five inference calls are refused, whichever items they carry: round 1 must leave work for round 2.
    # (Random faults made this test flaky: a token exchange refused too could fail one item every round.)
    refusal = {"kind": "5xx", "status": 503, "path": "/inference", "method": "POST"}
    emulated.state.scripted["omnitensor"].extend([dict(refusal) for _ in range(5)])
    run = _dag("edgeinfer_test_batch_omnitensor_retries").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    header = json.loads((tmp_path / "_edgeinfer" / "batch.json").read_text())
    assert len(header["rounds"]) >= 2, "some items were refused and sent again"
    assert emulated.state.scripted["omnitensor"] == [], "every scripted refusal was served"
    rows = _rows(tmp_path / "results.jsonl")
    assert sorted(r["index"] for r in rows) == list(range(20))
    assert {r["state"] for r in rows} == {"succeeded"}
    snapshot = emulated.state.snapshot()
    assert sum(snapshot["submissions"]["omnitensor"].values()) == 20, "each inference ran once"
    assert snapshot["duplicates"]["omnitensor"] == {}


def test_batch_sensor_waits_for_native_and_fan_out_batches(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = _dag("edgeinfer_test_batch_sensor").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {
        "start_batch": "success",
        "fan_out": "success",
        "wait_native": "success",
        "wait_fan_out": "success",
    }
