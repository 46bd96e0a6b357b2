"""Transcribe audio with Whisper on Theta EdgeCloud.

Runs as it is against the emulator (``make demo`` or ``airflow dags test edgeinfer_theta_transcription``
with the ``AIRFLOW_CONN_EDGEINFER_*`` variables the emulator prints): it generates a short sample WAV,
streams it to Theta through a presigned URL (``PresignedUploadOperator``), then transcribes it.

Set ``audio_source`` to transcribe your own files: a local path, a URI or a glob such as
``s3://my-bucket/calls/2026-11-21/*.wav`` (read through the ``audio_conn_id`` connection). Every file is
uploaded in constant memory, a few at a time, and becomes one mapped transcription. ``output_path``
says where the results go (e.g. ``s3://bucket/transcripts``).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator

DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")

with DAG(
    dag_id="edgeinfer_theta_transcription",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    # Retrying is safe: a retry reattaches to the request its previous try submitted.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["edgeinfer", "theta", "example"],
    params={
        "audio_source": Param(
            None,
            type=["null", "string"],
            description="Path, URI or glob of the audio; empty uploads a generated sample",
        ),
        "audio_conn_id": Param("aws_default", type="string", description="Connection reading audio_source"),
        "language": Param("en", type="string"),
        "output_path": Param(os.path.join(DEMO_ROOT, "theta-transcription"), type="string"),
    },
) as dag:

    @task
    def audio_source(params: dict[str, Any]) -> list[str]:
        """What to upload: the param, or a freshly generated one-second sample WAV."""
        if params["audio_source"]:
            return [str(params["audio_source"])]
        import math
        import struct
        import wave

        path = os.path.join(DEMO_ROOT, "sample-audio", "sample.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with wave.open(path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(16000)))
        return [path]

    # XCom: [{"audio_filename": "<uploaded name>"}, ...], one per file, in order; no URL, no signature.
    upload = PresignedUploadOperator(
        task_id="upload_audio",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        field="audio_filename",
        source=audio_source(),
        source_conn_id="{{ params.audio_conn_id }}",
    )

    @task
    def transcription_inputs(uploads: list[dict[str, str]], params: dict[str, Any]) -> list[dict[str, str]]:
        """One Whisper input per uploaded file."""
        return [{**uploaded, "language": params["language"]} for uploaded in uploads]

    InferenceOperator.partial(
        task_id="transcribe",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        output_path="{{ params.output_path }}",
        poll_interval=1,
        deferrable=True,
    ).expand(input=transcription_inputs(upload.output))
