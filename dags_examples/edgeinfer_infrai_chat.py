"""Summarize a text with a chat model on infrai's OpenAI-compatible core.

infrai answers in the submitting call itself; deferred, that call runs in the triggerer (with an
idempotency key derived from the task instance, so a repeat is deduplicated by infrai). Runs as it
is against the emulator; ``text`` and ``model`` are DAG params.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

with DAG(
    dag_id="edgeinfer_infrai_chat",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    # Retrying is safe: a retry reattaches to the request its previous try submitted.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["edgeinfer", "infrai", "example"],
    params={
        "model": Param("deepseek-chat", type="string"),
        "text": Param(
            "Airflow schedules batch work as DAGs of tasks. Deferrable operators free worker slots while "
            "they wait on external systems, handing the wait to an async triggerer.",
            type="string",
        ),
    },
) as dag:
    InferenceOperator(
        task_id="summarize",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        input={
            "model": "{{ params.model }}",
            "messages": [
                {"role": "system", "content": "Summarize in one sentence."},
                {"role": "user", "content": "{{ params.text }}"},
            ],
            "max_tokens": 128,
        },
        deferrable=True,
    )
