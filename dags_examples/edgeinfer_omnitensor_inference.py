"""Run a model on OmniTensor.

OmniTensor's inference is synchronous and OmniTensor offers no idempotency key for it, so the call
is made on the worker even with ``deferrable=True``: in the triggerer, a triggerer's death mid-call
would have the triggerer that adopts it send the call again, billed twice. A worker's death
mid-call fails the retry with ``OutcomeUnknownError`` instead. Runs as it is against the emulator;
``model_id`` and ``text`` are DAG params.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

with DAG(
    dag_id="edgeinfer_omnitensor_inference",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    # Retrying is safe: a retry reattaches to the request its previous try submitted.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["edgeinfer", "omnitensor", "example"],
    params={
        "model_id": Param("sentiment-v1", type="string"),
        "text": Param("The new release fixed every bug we reported. Great work!", type="string"),
    },
) as dag:
    InferenceOperator(
        task_id="classify",
        conn_id="edgeinfer_omnitensor_default",
        service="{{ params.model_id }}",
        input={"text": "{{ params.text }}"},
        deferrable=True,
    )
