"""DAGs of ``make production-check ARGS=--compare``: the same Theta transcriptions three ways.

- ``edgeinfer_compare_mapped``: one deferrable ``InferenceOperator`` per input (mapped);
- ``edgeinfer_compare_batch``: one ``BatchOperator`` for all inputs;
- ``edgeinfer_compare_http``: what users build with the http provider: mapped ``HttpOperator`` submits,
  then mapped ``HttpSensor`` waits. The provider's ``HttpSensor(deferrable=True)`` defers only without
  a ``response_check``, and its trigger then fires on the first answer that is not a 404, while the job
  still runs; waiting for the job's state needs a ``response_check``, which makes it poke from a worker.
  It runs in ``reschedule`` mode, the cheapest worker-side wait.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG
from production_inputs import BATCH_OUTPUT_ENV, compare_inputs

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

POLL_SECONDS = 10.0
HTTP_CONN = "edgeinfer_compare_http"


def _dag(dag_id: str, doc: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=256,
        tags=["edgeinfer-production"],
        doc_md=doc,
    )


def request_id(response: Any) -> str:
    return str(response.json()["body"]["infer_requests"][0]["id"])


def finished(response: Any) -> bool:
    state = response.json()["body"]["infer_requests"][0]["state"]
    if state in ("error", "cancelled"):
        raise RuntimeError(f"the request ended {state}")
    return bool(state == "success")


with _dag("edgeinfer_compare_mapped", "One deferrable InferenceOperator per input."):
    InferenceOperator.partial(
        task_id="transcribe",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=1800,
        retries=2,
        retry_delay=timedelta(seconds=3),
    ).expand(input=compare_inputs())

with _dag("edgeinfer_compare_batch", "One BatchOperator for every input."):
    BatchOperator(
        task_id="transcribe_all",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=compare_inputs(),
        output_path=os.path.join(os.environ.get(BATCH_OUTPUT_ENV, "/tmp/edgeinfer-compare"), "compare"),
        max_concurrency=16,
        poll_interval=POLL_SECONDS,
        timeout=1800,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=3),
    )

with _dag(
    "edgeinfer_compare_http", "The http provider: mapped HttpOperator submits, mapped HttpSensor waits."
):
    submitted = HttpOperator.partial(
        task_id="submit",
        http_conn_id=HTTP_CONN,
        endpoint="theta/infer_request/whisper",
        method="POST",
        headers={"Content-Type": "application/json"},
        response_filter=request_id,
        deferrable=False,
        retries=2,
        retry_delay=timedelta(seconds=3),
    ).expand(data=[json.dumps({"input": i}) for i in compare_inputs()])
    HttpSensor.partial(
        task_id="wait",
        http_conn_id=HTTP_CONN,
        method="GET",
        response_check=finished,
        deferrable=True,
        mode="reschedule",
        poke_interval=POLL_SECONDS,
        timeout=1800,
    ).expand(endpoint=submitted.output.map(lambda rid: f"theta/infer_request/{rid}"))
