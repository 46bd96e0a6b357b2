"""Per-service capabilities under real Airflow (dag.test, SQLite) against the strict emulator.

- OctoAI's OpenAI-compatible text API answers in the call: deferred, the call runs in the triggerer
  and its answer travels sealed; a small batch is the fan-out itself (no status endpoint exists).
- infrai transcription takes its audio in OpenAI's multipart form, read from ``input_files``.
- A vendor's cost that is not stated is reported as unknown, never as $0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator import media
from tests.dags.conftest import task_states

FIXTURES = Path(__file__).parent / "fixtures"


def _dag(dag_id: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "edgeinfer_vendor_fidelity_dags", FIXTURES / "edgeinfer_vendor_fidelity_dags.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def _xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        assert row is not None, f"no XCom {key!r} from {task_id}"
        return XComModel.deserialize_value(row)


def _failures(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^airflow_provider_edgeinfer\.exceptions\.(\w+): (.*)$", text, re.M)


@pytest.mark.parametrize("dag_id", ["edgeinfer_test_octoai_text", "edgeinfer_test_octoai_text_blocking"])
def test_octoai_text_answers_in_the_call(
    airflow_db: None, emulated: Any, capsys: pytest.CaptureFixture[str], dag_id: str
) -> None:
    run = _dag(dag_id).test()
    assert task_states(run) == {"infer": "success"}
    requests = emulated.state.snapshot()["requests"]
    assert requests.get("octoai.chat_completions") == 1
    # Nothing went to the image host, and nothing was polled: the answer came in the call.
    assert not {k for k in requests if k.startswith("octoai.") and k != "octoai.chat_completions"}
    result = _xcom(run, "infer")
    assert result["vendor"] == "octoai" and result["service"] == "chat/completions"
    assert result["request_id"].startswith("chatcmpl-")
    assert result["output"]["choices"][0]["message"]["content"]
    # OctoAI states no cost: unknown, not $0.
    assert result["cost_usd"] is None
    assert f"request {result['request_id']} succeeded, cost unknown; result in " in capsys.readouterr().out


def test_octoai_text_batch_is_the_fan_out_itself(airflow_db: None, emulated: Any, tmp_path: Path) -> None:
    run = _dag("edgeinfer_test_octoai_text_batch").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "success"}
    assert emulated.state.snapshot()["requests"].get("octoai.chat_completions") == 3
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["succeeded"] * 3
    assert all(r["output"]["choices"][0]["message"]["content"] for r in rows)
    assert all(r["cost_usd"] is None for r in rows)
    # Unknown costs leave the total unknown and are counted, never summed as $0.
    summary = _xcom(run, "batch")
    assert summary["mode"] == "sync"
    assert (summary["cost_usd"], summary["items_without_cost"]) == (None, 3)


def test_infrai_transcription_sends_the_file_in_the_multipart_call(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    audio = media.wav(0.3, 330.0)
    source = tmp_path / "call.wav"
    source.write_bytes(audio)
    out = tmp_path / "out"
    run = _dag("edgeinfer_test_infrai_transcription").test(
        run_conf={"audio": str(source), "output_path": str(out)}
    )
    assert task_states(run) == {"transcribe": "success"}
    snapshot = emulated.state.snapshot()
    assert snapshot["requests"].get("infrai.audio.transcriptions") == 1
    assert sum(snapshot["submissions"]["infrai"].values()) == 1
    [written] = out.glob("*.json")
    # The emulator derives the transcript from the exact bytes it received.
    assert json.loads(written.read_text())["output"]["text"] == media.transcript(audio, "en")


def test_input_files_on_a_service_that_takes_no_files_names_the_vendors_that_do(
    airflow_db: None, emulated: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "call.wav"
    source.write_bytes(media.wav(0.1))
    run = _dag("edgeinfer_test_octoai_input_files").test(run_conf={"audio": str(source)})
    assert task_states(run) == {"infer": "failed"}
    assert not any(k.startswith("octoai.") for k in emulated.state.snapshot()["requests"])
    [(kind, message)] = _failures(capsys.readouterr().out)
    assert kind == "InputValidationError"
    assert "'image' cannot take a file: octoai has no presigned upload API" in message
    assert "takes no file inline for service 'sdxl'" in message
    assert "theta (presigned uploads" in message and "infrai (inline for 'audio.transcriptions'" in message
    assert "octoai (inline, base64-encoded, for Whisper deployments" in message


def test_a_native_batch_refuses_transcription(
    airflow_db: None, emulated: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _dag("edgeinfer_test_infrai_transcription_batch").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"batch": "failed"}
    assert "infrai.batch.submit" not in emulated.state.snapshot()["requests"]
    [(kind, message)] = _failures(capsys.readouterr().out)
    assert kind == "InputValidationError"
    assert "audio.transcriptions cannot run in a batch" in message and "multipart" in message
