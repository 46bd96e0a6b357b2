"""No model output reaches a log line: every example DAG runs, its logs are scanned for what it produced.

Each example in ``dags_examples/`` runs under ``dag.test()`` against the emulator, with its trigger
run through Airflow's own ``TriggerRunner`` (which writes "Trigger fired event" with the event in
full into the log, as a real triggerer does; plain ``dag.test`` runs triggers without logging their
events). Everything written to stdout/stderr (Airflow's task, trigger and scheduler loggers) and every
record reaching the root logger at INFO is kept. The outputs the run produced are then read back
(XCom, result files, ``results.jsonl``, written media) and none may appear in what was logged.

The last test proves the scan can fail: an operator that logs its output is caught.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.airflow_versions import fired
from tests.dags.conftest import DAGS, load_dag, task_states

#: A transcription partition, as the transcription DAG writes it, for the index DAG to read.
TRANSCRIPTS = Path(__file__).parent / "fixtures" / "transcripts"
#: Each example DAG with the run conf that keeps it small and writes under the test's directory
#: (``{out}``). An example added to ``dags_examples/`` without an entry here fails the test.
RUN_CONF: dict[str, dict[str, Any]] = {
    "edgeinfer_bulk_transcription_backfill": {"sample_count": 4, "output_root": "{out}"},
    "edgeinfer_catalog_image_backfill": {"sample_count": 3, "output_root": "{out}"},
    "edgeinfer_infrai_chat": {},
    "edgeinfer_infrai_native_batch": {"output_path": "{out}"},
    "edgeinfer_octoai_sdxl": {"output_path": "{out}"},
    "edgeinfer_omnitensor_inference": {},
    "edgeinfer_sensors": {"output_path": "{out}"},
    "edgeinfer_theta_transcription": {"output_path": "{out}"},
    "edgeinfer_ticket_enrichment": {"demo_db_path": "{out}/tickets.sqlite", "output_root": "{out}"},
    "edgeinfer_transcript_index": {"partition": str(TRANSCRIPTS / "dt=2026-11-21"), "index_root": "{out}"},
}

#: Fields of an output that are metadata (ids, model names, costs, where a file was written), not
#: the user's data: a log line may name them.
METADATA_KEYS = frozenset(
    {
        "id",
        "object",
        "model",
        "created",
        "system_fingerprint",
        "role",
        "finish_reason",
        "framework",
        "content_type",
        "custom_id",
        "request_id",
        "image_path",
        "audio_path",
        "path",
        "url",
        "image_url",
        "audio_url",
        "response_url",
        "cost_usd",
        "cost_omnit",
        "latency_ms",
    }
)
MIN_NEEDLE = 12
MEDIA_SUFFIXES = (".png", ".jpg", ".wav", ".mp3", ".mp4")


class _RunAsTheTriggerer:
    """A trigger run by Airflow's ``TriggerRunner.run_trigger``, so its events are logged as in production."""

    def __init__(self, trigger: Any) -> None:
        self.trigger = trigger

    async def run(self) -> AsyncIterator[Any]:
        from airflow.jobs.triggerer_job_runner import TriggerRunner

        runner = TriggerRunner()  # type: ignore[no-untyped-call]
        task = asyncio.create_task(runner.run_trigger(1, self.trigger))
        runner.triggers[1] = {"task": task, "name": repr(self.trigger), "events": 0, "is_watcher": False}
        await task
        for entry in runner.events:
            yield fired(entry)[1]


@pytest.fixture
def triggerer_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions import dag as dag_module

    inline: Any = dag_module._run_inline_trigger

    def run_inline(trigger: Any, ti: Any) -> Any:
        return inline(_RunAsTheTriggerer(trigger), ti)

    monkeypatch.setattr(dag_module, "_run_inline_trigger", run_inline)


@pytest.fixture
def logs(
    triggerer_logging: None, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[Any]:
    """A callable returning all log text so far: stdout, stderr and the root logger at INFO."""
    caplog.set_level(logging.INFO)
    seen: list[str] = []

    def text() -> str:
        out, err = capfd.readouterr()
        seen.extend([out, err])
        return "\n".join([*seen, caplog.text])

    yield text


# -- reading back what a run produced -----------------------------------------------------------


def _xcom_values(dag_run: Any) -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key="return_value")
        ).all()
        return [XComModel.deserialize_value(row) for row in rows]


def _outputs_in(value: Any) -> Iterator[Any]:
    """Every ``output`` field inside a result (an XCom value, a result file, a results.jsonl row)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "output" and item is not None:
                yield item
            else:
                yield from _outputs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _outputs_in(item)


def _produced(dag_run: Any, directory: Path) -> tuple[list[Any], list[bytes]]:
    """The outputs (XCom and files under ``directory``) and the media files the run wrote."""
    outputs = [o for value in _xcom_values(dag_run) for o in _outputs_in(value)]
    media: list[bytes] = []
    for path in sorted(directory.rglob("*")):
        if path.suffix == ".json":
            outputs.extend(_outputs_in(json.loads(path.read_text())))
        elif path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            outputs.extend(o for row in rows for o in _outputs_in(row))
        elif path.suffix in MEDIA_SUFFIXES:
            media.append(path.read_bytes())
    return outputs, media


def needles(outputs: list[Any], media: list[bytes]) -> set[str]:
    """Strings whose presence in a log means an output was logged.

    Long text fields as they are; short ones as ``key: value`` pairs in the forms a dict takes in a
    log line (``repr`` and JSON); vectors by their first values; media as a slice of their base64 text.
    """
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if key in METADATA_KEYS:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list) and len(value) >= 8 and all(type(v) is float for v in value):
            # A vector (an embedding): its first values as repr and JSON both print them.
            found.add(", ".join(repr(v) for v in value[:4]))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and not value.startswith(
            ("file://", "s3://", "http://", "https://", "/")
        ):
            if len(value) >= MIN_NEEDLE:
                found.add(value)
            elif key is not None and len(value) >= 4:
                found.update({f"'{key}': '{value}'", f'"{key}": "{value}"', f'"{key}":"{value}"'})

    for output in outputs:
        walk(output, None)
    for blob in media:
        encoded = base64.b64encode(blob).decode()
        found.add(encoded[64:128] if len(encoded) >= 128 else encoded)
    return found


def leaked(log_text: str, outputs: list[Any], media: list[bytes]) -> list[str]:
    return sorted(n for n in needles(outputs, media) if n in log_text)


# -- the examples --------------------------------------------------------------------------------


#: Examples whose one call answers in the call on a vendor that cannot recognise a repeat: made on
#: the worker even when deferrable (a triggerer's successor would make it again), so nothing defers.
CALLED_ON_THE_WORKER = {"edgeinfer_omnitensor_inference"}


def test_every_example_dag_is_scanned() -> None:
    assert sorted(RUN_CONF) == sorted(p.stem for p in DAGS.glob("edgeinfer_*.py"))


@pytest.mark.parametrize("dag_id", sorted(RUN_CONF))
def test_no_output_of_an_example_dag_is_logged(
    airflow_db: None, emulated: Any, logs: Any, tmp_path: Path, dag_id: str
) -> None:
    for vendor in ("theta", "octoai"):
        emulated.state.timing[vendor] = Timing(0.0, 0.1)
    conf = {k: (v.format(out=tmp_path) if isinstance(v, str) else v) for k, v in RUN_CONF[dag_id].items()}

    run = load_dag(dag_id).test(run_conf=conf)

    assert set(task_states(run).values()) == {"success"}, task_states(run)
    outputs, media = _produced(run, tmp_path)
    found = needles(outputs, media)
    assert found, f"{dag_id} produced no output to look for"
    text = logs()
    if dag_id not in CALLED_ON_THE_WORKER:
        assert "Trigger fired event" in text, "every other example defers: its events must be in the logs"
    assert not leaked(text, outputs, media), f"model output in the logs of {dag_id}"


def test_the_scan_catches_an_output_that_is_logged(
    airflow_db: None, emulated: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof the capture and the scan work: an operator logging its output is caught."""
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    complete = InferenceOperator._complete

    def logging_complete(self: InferenceOperator, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = complete(self, *args, **kwargs)
        self.log.info("result: %s", result["output"])
        return result

    monkeypatch.setattr(InferenceOperator, "_complete", logging_complete)
    run = load_dag("edgeinfer_infrai_chat").test()

    assert task_states(run) == {"summarize": "success"}
    outputs, media = _produced(run, Path("/nonexistent"))
    text = logs()
    assert "Trigger fired event" in text, "the trigger's event line is captured"
    assert leaked(text, outputs, media), "an output in the task log must be found"
