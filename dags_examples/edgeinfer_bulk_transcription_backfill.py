"""Daily transcripts: each day's audio files transcribed with Whisper on Theta, into that day's partition.

Every run reads the audio of its own data interval, ``{audio_root}/dt=YYYY-MM-DD/*.wav``, and
writes ``results.jsonl`` and ``failures.jsonl`` to ``{output_root}/dt=YYYY-MM-DD/`` (the date is
``ds``, the start of a scheduled run's data interval; a manual run without a logical date uses the
day it was triggered). Each file becomes one request whose ``audio_filename`` is
its presigned upload; the BatchOperator fans the requests out from the worker, defers while Theta
works, then writes the results. A retried task resumes from the partition's manifest: it submits
only what is missing. The partition is the task's asset outlet, so a DAG scheduled on it (see
``edgeinfer_transcript_index``) runs once per written day.

**Schedule and back-fill.** ``@daily`` with ``catchup=False``: switching the DAG on runs the latest
day only. Past days are filled on purpose, one run (and one partition) per day:

    airflow backfill create --dag-id edgeinfer_bulk_transcription_backfill \\
        --from-date 2026-11-01 --to-date 2026-11-07

``catchup=True`` would instead run every day since ``start_date`` as soon as the DAG is switched on.
Running the back-fill again creates no second run for a day that has one (add
``--reprocess-behavior failed`` to retry the failed days only).

**As shipped** (``make demo``, or the Trigger button): with ``audio_root`` empty it generates
``sample_count`` short WAV files for the day in a local directory and transcribes those.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.batch import BatchOperator

DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")
#: The partition's date: the logical date (a scheduled run's data interval start, ``ds``), or the
#: day a manual run without one was triggered.
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"

with DAG(
    dag_id="edgeinfer_bulk_transcription_backfill",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    # Retrying is safe: a retry resumes the batch from its manifest instead of resubmitting it.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "theta", "batch", "example", "scheduled"],
    params={
        "audio_root": Param(
            None,
            type=["null", "string"],
            description="Where the audio lives (local path or URI such as s3://bucket/audio): each day "
            "reads {audio_root}/dt=YYYY-MM-DD/*.wav. Empty: sample WAVs are generated for the day.",
        ),
        "sample_count": Param(200, type="integer", minimum=1, description="Sample files per day"),
        "output_root": Param(
            os.path.join(DEMO_ROOT, "transcripts"),
            type="string",
            description="Each day's transcripts go to {output_root}/dt=YYYY-MM-DD/",
        ),
    },
) as dag:

    @task
    def audio_files(params: dict[str, object], dag_run: Any) -> str:
        """The glob of the data interval's audio: the param's day directory, or generated samples."""
        ds = (dag_run.logical_date or dag_run.run_after).strftime("%Y-%m-%d")
        if params["audio_root"]:
            return f"{str(params['audio_root']).rstrip('/')}/dt={ds}/*.wav"
        import math
        import struct
        import wave

        count = int(str(params["sample_count"]))
        directory = os.path.join(DEMO_ROOT, "sample-audio", f"dt={ds}")
        os.makedirs(directory, exist_ok=True)
        day = datetime.strptime(ds, "%Y-%m-%d").toordinal() % 97
        for n in range(count):
            path = os.path.join(directory, f"call-{n:04d}.wav")
            if os.path.exists(path):
                continue
            partial = f"{path}.{os.getpid()}.part"  # renamed when whole: the glob never sees half a file
            with wave.open(partial, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                tone = 300 + 7 * n + day  # a different recording per file and per day
                wav.writeframes(
                    b"".join(struct.pack("<h", int(6000 * math.sin(i * tone / 8000))) for i in range(4000))
                )
            os.replace(partial, path)
        return os.path.join(directory, "*.wav")

    transcribe = BatchOperator(
        task_id="transcribe",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs="{{ ti.xcom_pull(task_ids='audio_files') }}",
        file_field="audio_filename",
        # One partition per data interval: a re-run of a day finds its own manifest, never another day's.
        output_path="{{ params.output_root.rstrip('/') }}/dt=" + DAY + "/",
        max_concurrency=16,
        poll_interval=2,
        timeout=timedelta(hours=6),
        deferrable=True,
    )

    audio_files() >> transcribe
