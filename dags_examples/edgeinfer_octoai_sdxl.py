"""Generate an SDXL image on OctoAI asynchronously and write it to ``output_path``.

The request is submitted with ``X-OctoAI-Async: 1``; the triggerer polls it; the worker fetches the
result and decodes the base64 image into a file. Runs as it is against the emulator; ``prompt`` and
``output_path`` (a local path or an object-storage URI such as ``s3://bucket/images``) are DAG params.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

with DAG(
    dag_id="edgeinfer_octoai_sdxl",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    # Retrying is safe: a retry reattaches to the request its previous try submitted.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["edgeinfer", "octoai", "example"],
    params={
        "prompt": Param("A watercolor lighthouse at dawn, soft light", type="string"),
        "output_path": Param(
            os.path.join(tempfile.gettempdir(), "edgeinfer-demo", "octoai-sdxl"), type="string"
        ),
    },
) as dag:
    InferenceOperator(
        task_id="generate",
        conn_id="edgeinfer_octoai_default",
        service="generate/sdxl",
        input={"prompt": "{{ params.prompt }}", "steps": 20, "width": 512, "height": 512, "num_images": 1},
        output_path="{{ params.output_path }}",
        poll_interval=1,
        deferrable=True,
    )
