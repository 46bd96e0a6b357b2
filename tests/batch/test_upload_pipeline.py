"""A batch over a glob uploads each file just before its item is sent, by the item's sender on the
fan-out's event loop: uploads and submissions overlap (no chunk of files is all uploaded before any
is sent), at most one upload per sender is in flight, and a file whose upload fails fails its item
alone, never submitted."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.fanout import FanOut
from airflow_provider_edgeinfer.clients import presigned
from airflow_provider_edgeinfer.exceptions import JobFailedError, ServerError
from airflow_provider_edgeinfer.operators.batch import BatchOperator
from tests.batch.batch_worker import FakeTI, killed_at_upload

FILES = 40
SENDERS = 2


def _run(inputs: str, output: Path) -> dict[str, Any]:
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=inputs,
        file_field="audio_filename",
        output_path=str(output),
        max_concurrency=SENDERS,
        poll_interval=0.05,
        deferrable=False,
    )
    result = operator.execute({"ti": FakeTI()})  # type: ignore[arg-type,typeddict-item]
    assert isinstance(result, dict)
    return result


@pytest.fixture
def audio(tmp_path: Path) -> str:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(FILES):
        (folder / f"{n:03d}.wav").write_bytes(b"RIFF" + bytes(64))
    return str(folder / "*.wav")


class Recorder:
    """``upload`` and ``submitted``, in the order they happened, and the most uploads in flight."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)

    def happened(self, event: str, *, upload: bool = False) -> None:
        with self._lock:
            self._in_flight -= upload
            self.events.append(event)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    transfer, record = presigned.transfer_async, FanOut._record

    async def counted_upload(*args: Any, **kwargs: Any) -> str:
        recorder.started()
        try:
            return await transfer(*args, **kwargs)
        finally:
            recorder.happened("upload", upload=True)

    async def counted_record(self: FanOut, item: Any, job: Any) -> None:
        recorder.happened("submitted")
        await record(self, item, job)

    monkeypatch.setattr(presigned, "transfer_async", counted_upload)
    monkeypatch.setattr(FanOut, "_record", counted_record)
    return recorder


def test_uploads_and_submissions_overlap_within_the_senders(
    emulated: Any, audio: str, recorder: Recorder, tmp_path: Path
) -> None:
    result = _run(audio, tmp_path / "out")
    assert result["succeeded"] == FILES
    events = recorder.events
    assert events.count("upload") == events.count("submitted") == FILES
    last_upload = len(events) - 1 - events[::-1].index("upload")
    # Every file uploaded before any is sent would put the first submission after the last upload.
    assert events.index("submitted") < last_upload / 2, events
    assert 1 <= recorder.most_in_flight <= SENDERS


def test_a_failed_upload_fails_its_item_alone(
    emulated: Any, audio: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    transfer = presigned.transfer_async

    async def failing(*args: Any, **kwargs: Any) -> str:
        if args[2].label.endswith("007.wav"):
            raise ServerError("the upload answered 503 on every attempt", vendor="theta")
        return await transfer(*args, **kwargs)

    monkeypatch.setattr(presigned, "transfer_async", failing)
    with pytest.raises(JobFailedError, match=f"1 of {FILES} items failed"):
        _run(audio, tmp_path / "out")
    failures = (tmp_path / "out" / "failures.jsonl").read_text()
    assert "007.wav" in failures and failures.count("\n") == 1
    assert emulated.counters()["requests"].get("theta.create_request") == FILES - 1


def test_an_upload_answered_503_is_sent_again_not_failed(emulated: Any, audio: str, tmp_path: Path) -> None:
    """The fan-out's uploads follow the connection's retry policy: the PUT goes again to the same URL."""
    emulated.state.scripted["uploads"].append({"kind": "5xx", "status": 503})
    result = _run(audio, tmp_path / "out")
    assert result["succeeded"] == FILES
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""
    requests = emulated.counters()["requests"]
    # A failed item retried in a next round would ask for a fresh URL: one presign per file.
    assert requests["theta.presigned_urls"] == FILES
    assert requests["storage.put"] == FILES


def test_a_resumed_glob_batch_skips_checking_its_frozen_files_again(
    emulated: Any, audio: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The retry of a killed glob batch reads the same frozen file list: its items were checked when
    the batch started, so it goes straight to what is left (a million files: 30 s more before)."""
    from airflow_provider_edgeinfer.batch.items import Items

    with killed_at_upload(monkeypatch, 10), pytest.raises(SystemExit):
        _run(audio, tmp_path / "out")
    real_check, checks = Items.check, []
    monkeypatch.setattr(Items, "check", lambda self, *a, **k: checks.append(1) or real_check(self, *a, **k))
    result = _run(audio, tmp_path / "out")
    assert result["succeeded"] == FILES and checks == []
    assert emulated.counters()["requests"]["theta.create_request"] == FILES
