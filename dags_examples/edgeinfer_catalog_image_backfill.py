"""Back-fill catalogue images: one SDXL image per product prompt on OctoAI, from a JSONL file.

``prompts_path`` is a JSONL file (local or e.g. ``s3://my-bucket/catalog/prompts.jsonl``), one
product per line: ``{"custom_id": "sku-0001", "input": {"prompt": "...", "steps": 20}}``. Each image
is decoded into ``output_path/media/``; ``results.jsonl`` maps each ``custom_id`` to its image.
OctoAI has no listing and no cancel: the trigger polls unfinished requests with bounded concurrent
GETs. Runs as it is against the emulator: with ``prompts_path`` empty it writes a sample file.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.batch import BatchOperator

DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")
PRODUCTS = ["linen shirt", "oak side table", "ceramic mug", "trail running shoe", "desk lamp", "wool scarf"]

with DAG(
    dag_id="edgeinfer_catalog_image_backfill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "octoai", "batch", "example"],
    params={
        "prompts_path": Param("", type="string", description="JSONL of prompts; empty writes a sample"),
        "sample_count": Param(24, type="integer", minimum=1),
        "output_path": Param(os.path.join(DEMO_ROOT, "catalog-images"), type="string"),
    },
) as dag:

    @task
    def prompts(params: dict[str, object]) -> str:
        if params["prompts_path"]:
            return str(params["prompts_path"])
        import json

        os.makedirs(DEMO_ROOT, exist_ok=True)
        path = os.path.join(DEMO_ROOT, "catalog-prompts.jsonl")
        with open(path, "w") as out:
            for n in range(int(str(params["sample_count"]))):
                product = PRODUCTS[n % len(PRODUCTS)]
                prompt = f"Studio product photo of a {product}, variant {n}, white background"
                line = {"custom_id": f"sku-{n:04d}", "input": {"prompt": prompt, "steps": 20}}
                out.write(json.dumps(line) + "\n")
        return path

    images = BatchOperator(
        task_id="generate_images",
        conn_id="edgeinfer_octoai_default",
        service="generate/sdxl",
        inputs="{{ ti.xcom_pull(task_ids='prompts') }}",
        output_path="{{ params.output_path }}",
        max_concurrency=8,
        max_failed_ratio=0.02,  # a few refused prompts do not fail the back-fill; see failures.jsonl
        poll_interval=2,
        deferrable=True,
    )

    prompts() >> images
