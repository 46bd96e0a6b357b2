"""Catalogue images, nightly: one SDXL image per new product prompt on OctoAI, into that day's partition.

Runs at 02:00 UTC (cron ``0 2 * * *``) for the day before: its data interval. It reads that day's
prompts, ``{prompts_root}/dt=YYYY-MM-DD/prompts.jsonl`` (local or e.g. ``s3://my-bucket/catalog``),
one product per line: ``{"custom_id": "sku-0001", "input": {"prompt": "...", "steps": 20}}``. Each
image is decoded into ``{output_root}/dt=YYYY-MM-DD/media/``; that partition's ``results.jsonl``
maps each ``custom_id`` to its image. OctoAI has no listing and no cancel: the trigger polls
unfinished requests with bounded concurrent GETs.

**Schedule and back-fill.** ``catchup=False``: switching the DAG on runs the latest night only.
Past days are filled with ``airflow backfill create --dag-id edgeinfer_catalog_image_backfill
--from-date 2026-11-01 --to-date 2026-11-07``: one run, one partition per day. ``catchup=True``
would run every night since ``start_date`` as soon as the DAG is switched on.

**As shipped** (Trigger button, ``airflow dags test``): with ``prompts_root`` empty it writes
``sample_count`` sample prompts for the day and generates those.
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
PRODUCTS = ["linen shirt", "oak side table", "ceramic mug", "trail running shoe", "desk lamp", "wool scarf"]

with DAG(
    dag_id="edgeinfer_catalog_image_backfill",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "octoai", "batch", "example", "scheduled"],
    params={
        "prompts_root": Param(
            None,
            type=["null", "string"],
            description="Each day reads {prompts_root}/dt=YYYY-MM-DD/prompts.jsonl. Empty: sample prompts.",
        ),
        "sample_count": Param(24, type="integer", minimum=1, description="Sample prompts per day"),
        "output_root": Param(
            os.path.join(DEMO_ROOT, "catalog-images"),
            type="string",
            description="Each day's images go to {output_root}/dt=YYYY-MM-DD/",
        ),
    },
) as dag:

    @task
    def prompts(params: dict[str, object], dag_run: Any) -> str:
        """The data interval's prompts file: the param's day file, or freshly written samples."""
        ds = (dag_run.logical_date or dag_run.run_after).strftime("%Y-%m-%d")
        if params["prompts_root"]:
            return f"{str(params['prompts_root']).rstrip('/')}/dt={ds}/prompts.jsonl"
        import json

        directory = os.path.join(DEMO_ROOT, "catalog-prompts", f"dt={ds}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "prompts.jsonl")
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
        output_path="{{ params.output_root.rstrip('/') }}/dt=" + DAY + "/",
        max_concurrency=8,
        max_failed_ratio=0.02,  # a few refused prompts do not fail the back-fill; see failures.jsonl
        poll_interval=2,
        deferrable=True,
    )

    prompts() >> images
