"""The same transcription DAG on every vendor that takes files, under real Airflow (dag.test, SQLite)
against the strict emulator: one file through InferenceOperator, a glob through BatchOperator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator import media
from tests.dags.conftest import task_states

FIXTURES = Path(__file__).parent / "fixtures"
#: vendor -> the emulator's request counter of one transcription call
CALLS = {
    "theta": "theta.create_request",
    "octoai": "octoai.predict_async",
    "infrai": "infrai.audio.transcriptions",
}


def _dag(vendor: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        "edgeinfer_transcription_dags", FIXTURES / "edgeinfer_transcription_dags.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dags[vendor]


def _audio(tmp_path: Path, count: int) -> list[bytes]:
    (tmp_path / "in").mkdir()
    clips = [media.wav(0.1 + 0.05 * n) for n in range(count)]
    for n, clip in enumerate(clips):
        (tmp_path / "in" / f"call-{n}.wav").write_bytes(clip)
    return clips


def _conf(tmp_path: Path) -> dict[str, str]:
    return {
        "audio": str(tmp_path / "in" / "call-0.wav"),
        "audio_glob": str(tmp_path / "in" / "*.wav"),
        "output_path": str(tmp_path / "out"),
    }


def _text(output: dict[str, Any]) -> str:
    """The transcript, in whichever shape the vendor answers (``text``, or Whisper's segments)."""
    if "text" in output:
        return str(output["text"])
    return " ".join(s["text"] for s in output["response"]["segments"])


@pytest.mark.parametrize("vendor", sorted(CALLS))
def test_the_same_transcription_dag_runs_on_every_vendor_that_takes_files(
    vendor: str, airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    clips = _audio(tmp_path, 3)
    run = _dag(vendor).test(run_conf=_conf(tmp_path))
    assert task_states(run) == {"transcribe_one": "success", "transcribe_all": "success"}
    # One call for the single file and one per file of the glob: nothing sent twice.
    assert emulated.state.snapshot()["requests"][CALLS[vendor]] == 1 + len(clips)

    [single] = (tmp_path / "out" / "one").glob("*.json")
    # Named after its source file, and carrying it.
    assert single.name.startswith("call-0.wav.")
    assert json.loads(single.read_text())["result"]["input_ref"] == str(tmp_path / "in" / "call-0.wav")
    # The emulator derives each transcript from the exact bytes it received.
    assert media.transcript(clips[0]) in _text(json.loads(single.read_text())["output"])
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "all" / "results.jsonl").read_text().splitlines()
    ]
    assert [r["input_ref"] for r in rows] == [str(tmp_path / "in" / f"call-{n}.wav") for n in range(3)]
    assert [media.transcript(c) in _text(r["output"]) for r, c in zip(rows, clips, strict=True)] == [True] * 3


def test_a_vendor_that_takes_no_files_is_refused_naming_those_that_do(
    airflow_db: None, emulated: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _audio(tmp_path, 2)
    run = _dag("omnitensor").test(run_conf=_conf(tmp_path))
    assert task_states(run) == {"transcribe_one": "failed", "transcribe_all": "failed"}
    assert not any(
        k.startswith("omnitensor.") and "auth" not in k for k in emulated.state.snapshot()["requests"]
    )
    out = capsys.readouterr().out
    for vendor in CALLS:
        assert f"{vendor} (" in out.split("Vendors that take input files:", 1)[1]
    assert out.count("omnitensor has no presigned upload API and takes no file inline") >= 2
