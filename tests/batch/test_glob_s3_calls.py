"""A batch over a glob of objects in S3 (moto) asks the store for no more than it must, per file.

Each object is read once (one GET, its upload); its size and etag come from the listing (one LIST
page per 1,000 objects), never from a HEAD per file per pass. A resumed try (a fresh process, no
listing cached) reads them from the manifest's file list, not from the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from tests.batch.batch_worker import FakeTI, killed_at_upload
from tests.s3 import CONN_ID, MotoS3

FILES = 12
WAV = b"RIFF" + bytes(200)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    s3 = MotoS3.shared()
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    client = s3.bucket("edgeinfer-glob-calls")
    for i in range(FILES):
        client.put_object(Bucket="edgeinfer-glob-calls", Key=f"in/{i:03d}.wav", Body=WAV)
    return s3


def _run(output: Path) -> dict[str, Any]:
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=f"s3://{CONN_ID}@edgeinfer-glob-calls/in/*.wav",
        file_field="audio_filename",
        output_path=str(output),
        poll_interval=1.0,
        deferrable=False,
    )
    result = operator.execute({"ti": FakeTI()})  # type: ignore[arg-type,typeddict-item]
    assert isinstance(result, dict)
    return result


def _forget_listings() -> None:
    """What a new task process starts with: no listing cached by the store's filesystem."""
    from airflow.sdk import ObjectStoragePath

    ObjectStoragePath(f"s3://{CONN_ID}@edgeinfer-glob-calls/").fs.invalidate_cache()


def test_each_file_is_read_once_and_never_asked_about(emulated: Any, s3: MotoS3, tmp_path: Path) -> None:
    _forget_listings()
    with s3.requests() as calls:
        result = _run(tmp_path)
    assert result["succeeded"] == FILES
    assert calls["HEAD object"] == 0, calls
    assert calls["GET object"] == FILES, calls
    assert calls["GET list"] <= 2, calls


def test_a_resumed_batch_asks_the_store_nothing_but_its_unsent_files(
    emulated: Any, s3: MotoS3, tmp_path: Path
) -> None:
    _run(tmp_path)
    # As if the task died once everything was submitted: the next try (a new process) takes the
    # batch's files from the manifest, checks them and waits; it has nothing to upload.
    header = tmp_path / "_edgeinfer" / "batch.json"
    state = json.loads(header.read_text())
    assert state["outcome"] is not None
    header.write_text(json.dumps({**state, "outcome": None}))
    _forget_listings()
    with s3.requests() as calls:
        result = _run(tmp_path)
    assert result["succeeded"] == FILES
    assert calls["HEAD object"] == 0, calls
    assert calls["GET object"] == 0, calls


def test_a_batch_killed_mid_fan_out_resumes_in_a_fresh_process(
    emulated: Any, s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A new task process has no store filesystem yet: the resumed try must not build its first
    S3 path inside the fan-out's event loop (s3fs runs a loop of its own to create it)."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import store

    with killed_at_upload(monkeypatch, 5), pytest.raises(SystemExit):
        _run(tmp_path)
    # What a new process starts with: no store attached, no filesystem instance cached.
    type(ObjectStoragePath(f"s3://{CONN_ID}@edgeinfer-glob-calls/").fs).clear_instance_cache()
    monkeypatch.setattr(store, "_STORE_CACHE", {})
    result = _run(tmp_path)
    assert result["succeeded"] == FILES
    assert emulated.counters()["requests"]["theta.create_request"] == FILES
