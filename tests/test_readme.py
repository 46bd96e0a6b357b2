"""The README's Python runs as written: each block becomes a DAG run under ``dag.test()``.

Every ```` ```python ```` block of the README is executed inside a DAG
(``tests/dags/fixtures/edgeinfer_readme_dags.py``), then run against the emulator (the default
``edgeinfer_*`` connections) and moto's S3 behind ``aws_default``, with no logical date (a manual run
in Airflow 3); every task must succeed. The bucket holds the files the blocks read (:data:`SEEDED`);
a block that reads anything else fails.
"""

from __future__ import annotations

import importlib.util
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import task_states
from tests.s3 import MotoS3

FIXTURE = Path(__file__).parent / "dags" / "fixtures" / "edgeinfer_readme_dags.py"
BUCKET = "my-bucket"
RUN_AFTER = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
DAY = RUN_AFTER.strftime("%Y-%m-%d")
#: What the README's blocks read from the bucket (WAV-looking bytes of various sizes).
SEEDED = {
    "calls/call-0001.wav": 48_000,
    f"calls/{DAY}/a.wav": 32_000,
    f"calls/{DAY}/b.wav": 64_000,
    f"audio/{DAY}/1.wav": 16_000,
    f"audio/{DAY}/2.wav": 24_000,
    f"audio/{DAY}/3.wav": 40_000,
}
#: A file each section's block must have written.
WRITES = {
    "Using it": f"transcripts/{DAY}/",
    "Batches": f"batches/{DAY}/results.jsonl",
    "Transcription on every vendor": f"batches/{DAY}/octoai/results.jsonl",
}


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("edgeinfer_readme_dags", FIXTURE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BLOCKS = _module().python_blocks()


def test_the_readme_has_the_blocks_this_test_checks() -> None:
    assert {"Using it", "Batches", "Uploads"} <= {heading for heading, _, _ in BLOCKS}


def _keys(s3: MotoS3) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    s3 = MotoS3.shared()
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    # The README's URIs name no connection: they must reach S3 through aws_default.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection())
    # Anything that bypasses the connection ends on a closed loopback port, never at AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    # Airflow keeps one filesystem per (scheme, connection) for the process: an aws_default attached
    # by an earlier test, elsewhere, must not serve this one.
    from airflow.sdk.io import store

    for alias in [a for a in store._STORE_CACHE if a.startswith("s3")]:
        del store._STORE_CACHE[alias]
    client = s3.bucket(BUCKET)
    for key in _keys(s3):
        client.delete_object(Bucket=BUCKET, Key=key)
    for key, size in SEEDED.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=b"RIFF" + random.Random(key).randbytes(size))
    return s3


@pytest.mark.parametrize(("heading", "line", "code"), BLOCKS, ids=[f"{h}:{n}" for h, n, _ in BLOCKS])
def test_a_readme_block_runs_as_a_dag(
    airflow_db: None, emulated: Any, bucket: MotoS3, heading: str, line: int, code: str
) -> None:
    module = _module()
    dag = getattr(module, module.dag_id_of(heading, line))
    assert dag.tasks, f"the block under {heading!r} builds no task"

    run = dag.test(run_after=RUN_AFTER, logical_date=None)

    states = task_states(run)
    assert states and set(states.values()) == {"success"}, states
    keys = _keys(bucket)
    if heading in WRITES:
        assert any(k.startswith(WRITES[heading]) for k in keys), keys
    # Single results and a batch never share a directory.
    assert not any(k.startswith("transcripts/") and "/_edgeinfer/" in k for k in keys), keys
