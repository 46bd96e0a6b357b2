"""Index transcripts as they land: scheduled by the transcription DAG's partitions, not by the clock.

``edgeinfer_bulk_transcription_backfill`` writes one partition per day (``.../dt=YYYY-MM-DD/``) and
its batch emits that partition as an asset event through the ``edgeinfer_batch_output`` asset
alias. This DAG is scheduled on the alias: each written partition queues a run (partitions written
close together, as in a back-fill, may share one run). The run embeds every transcript of the
partitions that triggered it (``@task.edgeinfer_batch``: one native batch on infrai), so
``{index_root}/<run>/results.jsonl`` holds one vector per transcript, keyed
``dt=YYYY-MM-DD:<transcript id>``: the index a search service loads.

Other DAGs' batches emit through the same alias: only partitions written by the transcription DAG
are indexed, and a run triggered by anything else ends skipped.

**As shipped** (Trigger button, ``airflow dags test``), without asset events, it indexes the
``partition`` param if given, else the newest partition under ``transcripts_root``; with neither,
the run is skipped with a message saying to run the transcription DAG first.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, AssetAlias, Param, task

from airflow_provider_edgeinfer.operators.batch import OUTPUT_ALIAS

DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")
UPSTREAM = "edgeinfer_bulk_transcription_backfill"
#: One index directory per run (a run may index several partitions).
RUN_OUTPUT = "{{ params.index_root.rstrip('/') }}/{{ run_id | replace(':', '-') | replace('+', '-') }}/"


def _partitions(events: Any, params: dict[str, Any]) -> list[str]:
    """The partitions to index: the upstream DAG's asset events, or the params on a manual run."""
    received = [event for asset_events in (events or {}).values() for event in asset_events]
    if received:
        return sorted({event.asset.uri for event in received if event.source_dag_id == UPSTREAM})
    if params["partition"]:
        return [str(params["partition"])]
    root = str(params["transcripts_root"])
    days = sorted(d for d in os.listdir(root) if d.startswith("dt=")) if os.path.isdir(root) else []
    return [os.path.join(root, days[-1])] if days else []


with DAG(
    dag_id="edgeinfer_transcript_index",
    schedule=AssetAlias(OUTPUT_ALIAS),
    start_date=datetime(2026, 1, 1),
    doc_md=__doc__,
    max_active_runs=1,  # events arriving while a run indexes wait for the next run, together
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "infrai", "batch", "example", "asset-driven"],
    params={
        "partition": Param(
            None, type=["null", "string"], description="Manual runs: the partition to index (a directory)"
        ),
        "transcripts_root": Param(
            os.path.join(DEMO_ROOT, "transcripts"),
            type="string",
            description="Manual runs without a partition: its newest dt=... partition is indexed",
        ),
        "embedding_model": Param("text-embedding-3-small", type="string"),
        "index_root": Param(os.path.join(DEMO_ROOT, "transcript-index"), type="string"),
    },
) as dag:

    @task.edgeinfer_batch(
        conn_id="edgeinfer_infrai_default",
        service="embeddings",
        output_path=RUN_OUTPUT,
        # The index is not a transcript partition: no event through the alias, so no run of this
        # DAG triggers another.
        outlets=[],
        poll_interval=2,
        deferrable=True,
    )
    def index_transcripts(
        params: dict[str, Any], triggering_asset_events: Any = None
    ) -> list[dict[str, Any]]:
        """One embedding input per transcript of the triggering partitions."""
        from airflow.providers.common.compat.sdk import AirflowSkipException  # airflow.exceptions on 3.1
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_edgeinfer.storage import as_storage_path

        partitions = _partitions(triggering_asset_events, params)
        if not partitions:
            raise AirflowSkipException(f"no transcript partition to index: run {UPSTREAM} first")
        inputs = []
        for partition in partitions:
            directory: ObjectStoragePath = as_storage_path(partition, "partition")
            day = directory.name
            with (directory / "results.jsonl").open("r") as rows:
                for line in rows:
                    row = json.loads(line)
                    text = (row.get("output") or {}).get("text") if row.get("state") == "succeeded" else None
                    if isinstance(text, str) and text.strip():
                        inputs.append(
                            {
                                "custom_id": f"{day}:{row['custom_id']}",
                                "input": {"model": params["embedding_model"], "input": text},
                            }
                        )
        if not inputs:
            raise AirflowSkipException(f"no transcript text in {', '.join(partitions)}")
        return inputs

    index_transcripts()
