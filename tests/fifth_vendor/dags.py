"""A DAG that runs the fifth vendor through every neutral operator and sensor, deferred."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from airflow_provider_edgeinfer.sensors.batch import BatchSensor
from airflow_provider_edgeinfer.sensors.request import InferenceRequestSensor

CONN_ID = "edgeinfer_fifth_default"
INPUTS = [{"text": "one"}, {"text": "two"}, {"fail": True}, {"text": "four"}]


DAG_ID = "edgeinfer_fifth_vendor"


def fifth_vendor_dag() -> DAG:
    """The DAG; ``params.output_path`` is the directory its results go under."""
    output_dir = "{{ params.output_path }}"
    with DAG(
        dag_id=DAG_ID,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["edgeinfer-tests"],
        params={"output_path": Param("/tmp/edgeinfer-fifth-vendor", type="string")},
    ) as dag:
        InferenceOperator(
            task_id="infer",
            conn_id=CONN_ID,
            service="echo-1",
            input={"text": "hello"},
            output_path=f"{output_dir}/single",
            poll_interval=1,
            deferrable=True,
        )
        batch = BatchOperator(
            task_id="batch",
            conn_id=CONN_ID,
            service="echo-1",
            inputs=INPUTS,
            output_path=f"{output_dir}/batch",
            max_failed_ratio=0.25,
            poll_interval=1,
            deferrable=True,
        )
        watch_batch = BatchSensor(
            task_id="watch_batch",
            conn_id=CONN_ID,
            output_path=f"{output_dir}/batch",
            min_success_ratio=0.75,
            poke_interval=1,
            timeout=60,
            deferrable=True,
        )
        batch >> watch_batch

        @task
        def start_elsewhere() -> str:
            from airflow_provider_edgeinfer.hooks.base import hook_for_connection

            hook = hook_for_connection(CONN_ID)
            with hook:
                return hook.run(hook.api.submit("echo-1", {"text": "elsewhere"})).request_id

        waiter = InferenceRequestSensor(
            task_id="watch_request",
            conn_id=CONN_ID,
            request_id="{{ ti.xcom_pull(task_ids='start_elsewhere') }}",
            poke_interval=1,
            timeout=60,
            deferrable=True,
        )
        start_elsewhere() >> waiter
    return dag
