"""DAGs of ``make production-check ARGS=--compare``: the same Theta transcriptions four ways.

- ``edgeinfer_compare_mapped``: one deferrable ``InferenceOperator`` per input (mapped);
- ``edgeinfer_compare_ended``: the same with ``end_from_trigger=True`` (one task run each, not two);
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
from datetime import timedelta
from typing import Any

from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

# On every Airflow process's PYTHONPATH (the reliability DAG folder, shared by both harnesses).
from harness_dags import THETA_WHISPER, batch_output, harness_dag
from production_inputs import compare_inputs

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

POLL_SECONDS = 10.0
HTTP_CONN = "edgeinfer_compare_http"


def _dag(dag_id: str, doc: str) -> Any:
    return harness_dag(dag_id, doc, tag="edgeinfer-production", max_active_tasks=256)


def request_id(response: Any) -> str:
    return str(response.json()["body"]["infer_requests"][0]["id"])


def finished(response: Any) -> bool:
    state = response.json()["body"]["infer_requests"][0]["state"]
    if state in ("error", "cancelled"):
        raise RuntimeError(f"the request ended {state}")
    return bool(state == "success")


for dag_id, doc, ended in (
    ("edgeinfer_compare_mapped", "One deferrable InferenceOperator per input.", False),
    ("edgeinfer_compare_ended", "One deferrable InferenceOperator per input, ended in the triggerer.", True),
):
    with _dag(dag_id, doc):
        InferenceOperator.partial(
            task_id="transcribe",
            **THETA_WHISPER,
            deferrable=True,
            end_from_trigger=ended,
            poll_interval=POLL_SECONDS,
            timeout=1800,
            retries=2,
            retry_delay=timedelta(seconds=3),
        ).expand(input=compare_inputs())

with _dag("edgeinfer_compare_batch", "One BatchOperator for every input."):
    BatchOperator(
        task_id="transcribe_all",
        **THETA_WHISPER,
        inputs=compare_inputs(),
        output_path=os.path.join(batch_output("edgeinfer-compare"), "compare"),
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
