"""InferenceOperator's ``input_files`` on a service that takes files inline (infrai transcription):
read, bounded, sent in the multipart call on the worker, and covered by the never-pay-twice key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from tests.operators.test_never_pay_twice import _TI, _Store


def _op(audio: Path, **kwargs: Any) -> InferenceOperator:
    args: dict[str, Any] = {
        "task_id": "transcribe",
        "conn_id": "edgeinfer_infrai_default",
        "service": "audio.transcriptions",
        "input": {"model": "whisper-1"},
        "input_files": {"file": str(audio)},
        "deferrable": True,
        **kwargs,
    }
    return InferenceOperator(**args)


def _run(op: InferenceOperator, store: _Store | None = None) -> dict[str, Any]:
    context = {"ti": _TI(1), "task_state_store": store if store is not None else _Store()}
    result: dict[str, Any] = op.execute(context)  # type: ignore[arg-type]
    return result


def _transcriptions(emulator: Any) -> tuple[int, int]:
    """(calls received, transcriptions made) at the emulated infrai."""
    snapshot = emulator.state.snapshot()
    return (
        snapshot["requests"].get("infrai.audio.transcriptions", 0),
        sum(snapshot["submissions"]["infrai"].values()),
    )


def test_a_deferrable_task_sends_the_file_in_the_call_on_the_worker(emulated: Any, tmp_path: Path) -> None:
    audio = media.wav(0.2)
    (tmp_path / "call.wav").write_bytes(audio)
    result = _run(_op(tmp_path / "call.wav"))  # no TaskDeferred: the file cannot travel to a trigger
    assert result["output"] == {"text": media.transcript(audio)}
    assert _transcriptions(emulated) == (1, 1)


def test_the_key_covers_the_file_so_a_rerun_pays_once_and_a_changed_file_pays_again(
    emulated: Any, tmp_path: Path
) -> None:
    source = tmp_path / "call.wav"
    source.write_bytes(media.wav(0.2))
    first = _run(_op(source))
    # The same task instance and file: the same idempotency key, which infrai answers from its record.
    assert _run(_op(source))["output"] == first["output"]
    assert _transcriptions(emulated) == (2, 1)
    # A different file at the same path is another request (the same key would be a 409 conflict).
    source.write_bytes(media.wav(0.3))
    assert _run(_op(source))["output"] != first["output"]
    assert _transcriptions(emulated) == (3, 2)


def test_a_file_above_the_inline_limit_is_refused_before_anything_is_sent(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "call.wav"
    source.write_bytes(media.wav(0.2))
    monkeypatch.setattr(InfraiAPI, "max_inline_file_bytes", 100)
    with pytest.raises(InputValidationError, match="larger than the 100 bytes infrai takes inline"):
        _run(_op(source))
    assert _transcriptions(emulated) == (0, 0)


def test_inline_files_are_for_the_services_that_take_them(emulated: Any, tmp_path: Path) -> None:
    source = tmp_path / "call.wav"
    source.write_bytes(media.wav(0.1))
    op = _op(source, service="chat.completions", input={"model": "gpt-4o-mini", "messages": []})
    with pytest.raises(
        InputValidationError,
        match=r"infrai has no presigned upload API and takes no file inline for service 'chat\.completions'",
    ):
        _run(op)
    assert not any(k.startswith("infrai.") for k in emulated.state.snapshot()["requests"])
