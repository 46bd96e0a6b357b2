"""A native infrai batch of chat requests, refused before submission if it would cost too much.

One ``/v1/ai/batch/submit`` carries every request with an idempotency key derived from the task
instance and the batch's content, so a retried task reattaches instead of paying twice. Before it,
``cost.estimate`` prices the prompts and a batch above ``max_cost_usd`` is refused with the estimate
in the message. Results stream page by page into ``output_path/results.jsonl``; infrai's own export
is downloaded beside them; infrai keeps the results for ``retention_days``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_edgeinfer.operators.batch import BatchOperator

TICKETS = [
    "My invoice shows the wrong VAT number.",
    "The app logs me out every few minutes.",
    "Can I move my subscription to another workspace?",
    "Export to CSV drops the last column.",
    "Password reset mail never arrives.",
]

with DAG(
    dag_id="edgeinfer_infrai_native_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["edgeinfer", "infrai", "batch", "example"],
    params={
        "model": Param("deepseek-chat", type="string"),
        "max_cost_usd": Param(1.0, type="number", minimum=0),
        "output_path": Param(
            os.path.join(tempfile.gettempdir(), "edgeinfer-demo", "infrai-batch"), type="string"
        ),
    },
    render_template_as_native_obj=True,
) as dag:
    BatchOperator(
        task_id="classify_tickets",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=[
            {
                "custom_id": f"ticket-{n:03d}",
                "input": {
                    "model": "{{ params.model }}",
                    "messages": [
                        {"role": "system", "content": "Classify the ticket: billing, auth, account or bug."},
                        {"role": "user", "content": f"{text} (ticket {n})"},
                    ],
                    "max_tokens": 16,
                },
            }
            for n, text in enumerate(TICKETS * 8)
        ],
        output_path="{{ params.output_path }}",
        max_cost_usd="{{ params.max_cost_usd }}",
        retention_days=7,
        export_format="jsonl",
        poll_interval=2,
        deferrable=True,
    )
