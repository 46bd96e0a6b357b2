"""Back-fill transcripts: every audio file of a day transcribed with Whisper on Theta, as JSONL.

``audio_glob`` names the files (e.g. ``s3://my-bucket/audio/2026-11-21/*.wav``); each becomes one
request whose ``audio_filename`` is its presigned upload. The BatchOperator fans the requests out
from the worker, defers while Theta works (polling the project listing, a page of many requests per
call), then writes ``results.jsonl`` and ``failures.jsonl`` under ``output_path`` (e.g.
``s3://my-bucket/transcripts/2026-11-21/``). A retried task resumes: it submits only what is missing.

Runs as it is against the emulator (``make demo``): with ``audio_glob`` empty it generates
``sample_count`` short WAV files in a local directory and transcribes those.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.batch import BatchOperator

DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")

with DAG(
    dag_id="edgeinfer_bulk_transcription_backfill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Retrying is safe: a retry resumes the batch from its manifest instead of resubmitting it.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "theta", "batch", "example"],
    params={
        "audio_glob": Param("", type="string", description="Audio files; empty generates local samples"),
        "sample_count": Param(200, type="integer", minimum=1),
        "output_path": Param(os.path.join(DEMO_ROOT, "transcription-backfill"), type="string"),
        "language": Param("en", type="string"),
    },
) as dag:

    @task
    def audio_files(params: dict[str, object]) -> str:
        """The glob to transcribe: the param, or freshly generated sample WAVs."""
        if params["audio_glob"]:
            return str(params["audio_glob"])
        import math
        import struct
        import wave

        count = int(str(params["sample_count"]))
        directory = os.path.join(DEMO_ROOT, f"sample-audio-{count}")
        os.makedirs(directory, exist_ok=True)
        for n in range(count):
            path = os.path.join(directory, f"call-{n:04d}.wav")
            if os.path.exists(path):
                continue
            partial = f"{path}.{os.getpid()}.part"  # renamed when whole: the glob never sees half a file
            with wave.open(partial, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                tone = 300 + 7 * n  # a different recording per file
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
        output_path="{{ params.output_path }}",
        max_concurrency=16,
        poll_interval=2,
        timeout=timedelta(hours=6),
        deferrable=True,
    )

    audio_files() >> transcribe
