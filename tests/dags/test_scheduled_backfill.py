"""A week of transcription partitions back-filled under the real scheduler, and the index they trigger.

Real Airflow 3 processes (API server, scheduler with LocalExecutor, DAG processor, triggerer; SQLite
in a temporary ``AIRFLOW_HOME``) and the emulator, all on 127.0.0.1, run the shipped example DAGs:

1. A back-fill (``POST /api/v2/backfills``, as ``airflow backfill create``) over 7 days of
   ``edgeinfer_bulk_transcription_backfill``: each day's run reads its own ``dt=`` input directory
   and writes its own ``dt=`` partition, once; the emulator sees every file submitted exactly once.
2. Each partition is an asset event (the batch's output, through its asset alias) that schedules
   ``edgeinfer_transcript_index``: every transcript of the week is indexed, none twice.
3. The same back-fill again creates no run, pays for nothing and rewrites no partition.
4. One day cleared (its runs run again): nothing is transcribed again, nothing rewritten (the
   partition is announced again, as a task's outlets are on every success). One file of that day
   rewritten under the same name, and the day cleared again: that file alone is submitted.

Under load, a transcription try can write its partition and then fail to report its success to the
API server (a 404 for its task instance, seen on a busy SQLite); its retry finds the batch written and
must still announce the partition, or the index never sees that day.

About two minutes on two cores, most of it Airflow starting; it runs in ``make test``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
import time
import wave
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.reliability.airflow_api import AirflowAPI
from benchmarks.reliability.cluster import Cluster, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TRANSCRIBE = "edgeinfer_bulk_transcription_backfill"
INDEX = "edgeinfer_transcript_index"
FIRST_DAY = date(2026, 1, 5)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(7)]
FILES_PER_DAY = 3


def _write_wav(path: Path, tone: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(
            b"".join(struct.pack("<h", int(5000 * math.sin(i * tone / 8000))) for i in range(800))
        )


class Week:
    """The running cluster, and the week of audio it transcribes."""

    def __init__(self, cluster: Cluster, api: AirflowAPI) -> None:
        self.cluster = cluster
        self.api = api
        self.audio = cluster.run_dir / "audio"
        self.transcripts = cluster.run_dir / "transcripts"
        # Asset-triggered runs use the index DAG's defaults: under the temporary directory, which
        # the cluster's processes see as ``run_dir/tmp``.
        self.index = cluster.run_dir / "tmp" / "edgeinfer-demo" / "transcript-index"

    def counters(self) -> dict[str, Any]:
        response = httpx.get(f"{self.cluster.emulator_url}/_emulator/counters", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def backfill(self) -> dict[str, Any]:
        """``POST /api/v2/backfills`` (what ``airflow backfill create`` does, through the API server,
        so SQLite sees one writer more, not one more process)."""
        body = {
            "dag_id": TRANSCRIBE,
            "from_date": f"{DAYS[0].isoformat()}T00:00:00Z",
            "to_date": f"{DAYS[-1].isoformat()}T00:00:00Z",
            "dag_run_conf": {"audio_root": str(self.audio), "output_root": str(self.transcripts)},
            "max_active_runs": len(DAYS),
        }
        answers = []  # every attempt's status, for the failure message
        for attempt in range(5):
            # A busy SQLite answers 500 or 409 while the scheduler writes; the creation is one
            # transaction, and with reprocess_behavior "none" a repeat never adds a run.
            response = self.api.client.post("/backfills", json=body)
            answers.append(response.status_code)
            if response.status_code == 409 and attempt > 0:
                # The 5xx before came after the back-fill was committed (the request's audit log
                # row, written after it, can meet a locked SQLite): it is the one running now.
                listed = self.api.client.get("/backfills", params={"dag_id": TRANSCRIBE})
                running = [b for b in listed.json().get("backfills", []) if not b.get("completed_at")]
                if listed.is_success and len(running) == 1:
                    return {"status": 200, "body": running[0], "answers": answers}
            if response.status_code < 500 or attempt == 4:
                break
            time.sleep(2.0)
        return {"status": response.status_code, "body": response.json(), "answers": answers}

    def clear(self, run_id: str) -> None:
        """Clear every task of one run of the transcription DAG, as the UI's "Clear" does."""
        body = {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True}
        for attempt in range(5):
            response = self.api.client.post(f"/dags/{TRANSCRIBE}/clearTaskInstances", json=body)
            if response.status_code < 500 or attempt == 4:
                break
            time.sleep(2.0)  # a busy SQLite
        response.raise_for_status()

    def tries(self, run_id: str) -> int:
        """How many times the transcription task of one run has started."""
        response = self.api.client.get(f"/dags/{TRANSCRIBE}/dagRuns/{run_id}/taskInstances/transcribe")
        response.raise_for_status()
        return int(response.json()["try_number"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        response = self.api.client.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100})
        response.raise_for_status()
        return list(response.json()["dag_runs"])

    def wait_for_runs(self, dag_id: str, count: int, seconds: float) -> list[dict[str, Any]]:
        def done() -> bool:
            self.cluster.check_alive()
            runs = self.runs(dag_id)
            failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
            assert not failed, f"{dag_id} runs failed: {failed}; logs in {self.cluster.run_dir}"
            return len(runs) >= count and all(r["state"] == "success" for r in runs)

        wait_until(done, seconds, f"{count} successful runs of {dag_id}", interval=2)
        return self.runs(dag_id)

    def partitions(self) -> dict[str, tuple[float, list[dict[str, Any]]]]:
        """Each written partition: (mtime of results.jsonl, its rows)."""
        out = {}
        for results in sorted(self.transcripts.glob("dt=*/results.jsonl")):
            rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
            out[results.parent.name] = (results.stat().st_mtime, rows)
        return out

    def indexed(self) -> list[str]:
        keys = []
        for results in sorted(self.index.glob("*/results.jsonl")):
            rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
            keys.extend(r["custom_id"] for r in rows if r["state"] == "succeeded")
        return keys


@pytest.fixture(scope="module")
def week() -> Iterator[Week]:
    run_dir = Path(tempfile.mkdtemp(prefix="edgeinfer-backfill-"))
    cluster = Cluster(run_dir, parallelism=8, job_seconds=(1.0, 2.0))
    api: AirflowAPI | None = None
    try:
        cluster.start_emulator()
        cluster.configure_airflow()
        cluster.env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
                # Only what the test starts runs: every example is paused but the two it switches on,
                # and a DAG without max_active_runs of its own (the transcription DAG) gets 0, so
                # switching it on adds no scheduled run of today to the week. A back-fill brings
                # its own max_active_runs; the index DAG sets 1.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "0",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                # The examples' default directories (tempfile.gettempdir()) inside the run directory.
                "TMPDIR": str(run_dir / "tmp"),
            }
        )
        (run_dir / "tmp").mkdir()
        cluster.migrate()
        cluster.start_airflow()
        api = AirflowAPI(cluster.api_url)
        week = Week(cluster, api)
        for n, day in enumerate(DAYS):
            for f in range(FILES_PER_DAY):
                _write_wav(week.audio / f"dt={day.isoformat()}" / f"call-{f}.wav", 200 + 10 * n + f)
        wait_until(
            lambda: api.dag_exists(TRANSCRIBE) and api.dag_exists(INDEX),
            240,
            "the DAG processor to parse the examples",
            interval=2,
        )
        # A paused DAG's back-fill does not run, and a paused DAG is not queued by asset events.
        for dag_id in (TRANSCRIBE, INDEX):
            api.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        yield week
    finally:
        if api is not None:  # also when the cluster never came up: an open client is a leaked socket
            api.close()
        cluster.stop_all()
        if not os.environ.get("EDGEINFER_KEEP_RUN_DIR"):  # set it to read the processes' logs
            shutil.rmtree(run_dir, ignore_errors=True)


def test_a_week_backfilled_then_indexed_then_backfilled_again(week: Week) -> None:
    started = time.monotonic()
    created = week.backfill()
    assert created["status"] == 200, created
    runs = week.wait_for_runs(TRANSCRIBE, len(DAYS), 300)
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in DAYS]
    assert {r["run_type"] for r in runs} == {"backfill"}

    partitions = week.partitions()
    assert sorted(partitions) == [f"dt={d.isoformat()}" for d in DAYS]
    for name, (_, rows) in partitions.items():
        # Each day read its own inputs: its own files, each transcribed once.
        assert sorted(r["input_ref"] for r in rows) == [
            str(week.audio / name / f"call-{f}.wav") for f in range(FILES_PER_DAY)
        ]
        assert all(r["state"] == "succeeded" and r["output"]["text"] for r in rows)
    counters = week.counters()
    assert sum(counters["submissions"]["theta"].values()) == len(DAYS) * FILES_PER_DAY
    assert counters["duplicates"]["theta"] == {}

    # The partitions' asset events scheduled the index: every transcript of the week, once.
    # Up to seven asset-triggered runs one after another (max_active_runs=1), each a deferred native
    # batch: about 150 s on a quiet machine, more beside the rest of the suite.
    wait_until(lambda: len(week.indexed()) >= len(DAYS) * FILES_PER_DAY, 420, "the week's index", interval=2)
    index_runs = week.wait_for_runs(INDEX, 1, 120)
    assert {r["run_type"] for r in index_runs} == {"asset_triggered"}
    assert len(index_runs) <= len(DAYS)  # events arriving together share a run
    expected = {f"dt={d.isoformat()}:{f}" for d in DAYS for f in range(FILES_PER_DAY)}
    indexed = week.indexed()
    assert sorted(indexed) == sorted(expected)  # each key once: nothing indexed twice

    # The back-fill again: every day has its run, so none is created, nothing paid, nothing rewritten.
    before = week.counters()
    again = week.backfill()
    print(f"second back-fill: {again}")
    time.sleep(10)  # room for the scheduler to start anything the second back-fill had created
    assert len(week.runs(TRANSCRIBE)) == len(DAYS)
    after = week.counters()
    assert after["submissions"] == before["submissions"]
    assert week.partitions() == partitions
    assert len(week.runs(INDEX)) == len(index_runs)

    # One day cleared: its batch already succeeded with these inputs, so it transcribes and rewrites
    # nothing (its success announces the partition again: the index may embed it again, on infrai).
    day = next(r for r in runs if r["logical_date"][:10] == DAYS[2].isoformat())
    name = f"dt={DAYS[2].isoformat()}"
    tries = week.tries(day["dag_run_id"])
    week.clear(day["dag_run_id"])
    week.wait_for_runs(TRANSCRIBE, len(DAYS), 300)
    assert week.tries(day["dag_run_id"]) == tries + 1  # the task did run again
    assert week.counters()["submissions"]["theta"] == before["submissions"]["theta"]
    assert week.partitions() == partitions

    # One of its files rewritten (same name, new bytes), the day cleared again: that file alone is sent.
    time.sleep(1.1)  # a new mtime, even on a file system that keeps whole seconds
    _write_wav(week.audio / name / "call-1.wav", 999)
    week.clear(day["dag_run_id"])
    week.wait_for_runs(TRANSCRIBE, len(DAYS), 300)
    after = week.counters()
    assert sum(after["submissions"]["theta"].values()) == len(DAYS) * FILES_PER_DAY + 1
    rows = week.partitions()[name][1]
    assert [r["input_ref"] for r in rows] == [str(week.audio / name / f"call-{f}.wav") for f in range(3)]
    assert all(r["state"] == "succeeded" for r in rows)
    kept = {r["custom_id"]: r["request_id"] for r in partitions[name][1]}
    assert [r["request_id"] == kept[r["custom_id"]] for r in rows] == [True, False, True]
    print(f"back-fill, index, re-run and cleared days took {time.monotonic() - started:.0f} s")
