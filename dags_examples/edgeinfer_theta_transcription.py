"""Transcribe audio with Whisper on Theta EdgeCloud.

Runs as it is against the emulator (``make demo`` or ``airflow dags test edgeinfer_theta_transcription``
with the ``AIRFLOW_CONN_EDGEINFER_*`` variables the emulator prints): it uploads a generated sample
WAV through a presigned URL, then transcribes it. Set the ``audio_url`` param to transcribe a file
the vendor can fetch instead, and ``output_path`` to write elsewhere (e.g. ``s3://bucket/transcripts``).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

with DAG(
    dag_id="edgeinfer_theta_transcription",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["edgeinfer", "theta", "example"],
    params={
        "audio_url": Param("", type="string", description="Audio URL; empty uploads a generated sample"),
        "language": Param("en", type="string"),
        "output_path": Param(
            os.path.join(tempfile.gettempdir(), "edgeinfer-demo", "theta-transcription"), type="string"
        ),
    },
) as dag:

    @task
    def audio_input(params: dict[str, str]) -> str:
        """The audio_filename Whisper reads: the given URL, or a freshly uploaded sample."""
        if params["audio_url"]:
            return params["audio_url"]
        import io
        import math
        import struct
        import wave

        import httpx

        from airflow_provider_edgeinfer.hooks.theta import ThetaHook

        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(16000)))
        with ThetaHook() as hook:
            urls = hook.run(hook.api.presigned_urls("whisper", input_fields=["audio_filename"]))
        upload = urls["audio_filename"]
        httpx.put(
            upload.url,
            content=buffer.getvalue(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        ).raise_for_status()
        return upload.filename

    transcribe = InferenceOperator(
        task_id="transcribe",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        input={
            "audio_filename": "{{ ti.xcom_pull(task_ids='audio_input') }}",
            "language": "{{ params.language }}",
        },
        output_path="{{ params.output_path }}",
        poll_interval=1,
        deferrable=True,
    )

    audio_input() >> transcribe
