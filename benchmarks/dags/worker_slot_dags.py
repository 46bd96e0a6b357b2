"""The two DAGs benchmarks/worker_slot.py compares: the same inference, deferrable and blocking."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

for mode, deferrable in (("deferrable", True), ("blocking", False)):
    with DAG(
        dag_id=f"edgeinfer_bench_worker_slot_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
    ) as dag:
        InferenceOperator(
            task_id="infer",
            conn_id="edgeinfer_theta_default",
            service="whisper",
            input={"audio_filename": "https://example.invalid/talk.wav"},
            poll_interval=2,
            deferrable=deferrable,
        )
    globals()[f"dag_{mode}"] = dag
