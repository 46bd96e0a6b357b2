"""Wait for inference work started elsewhere: one request and one batch, each with its sensor.

Runs as it is against the emulator (``airflow dags test edgeinfer_sensors``). Another system (here,
two tasks calling the hooks directly) starts a Theta Whisper request and an infrai native batch;
``InferenceRequestSensor`` and ``BatchSensor`` wait for them in the triggerer, holding no worker slot,
and leave them running if the sensor is killed (they did not start them; ``cancel_on_kill=True``
changes that). For a fan-out batch, give ``BatchSensor`` the batch's ``output_path`` instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_edgeinfer.sensors.batch import BatchSensor
from airflow_provider_edgeinfer.sensors.request import InferenceRequestSensor

with DAG(
    dag_id="edgeinfer_sensors",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["edgeinfer", "example"],
    params={
        "output_path": Param(
            os.path.join(tempfile.gettempdir(), "edgeinfer-demo", "sensors"),
            type="string",
            description="Local directory the transcript is written to",
        )
    },
) as dag:

    @task
    def start_request() -> str:
        """A request made outside the provider's operators: only its id reaches the sensor."""
        from airflow_provider_edgeinfer.hooks.theta import ThetaHook

        audio = {"audio_filename": "https://example.com/calls/talk.wav", "language": "en"}
        with ThetaHook() as hook:
            return hook.run(hook.api.create_request("whisper", audio)).request.id

    wait_for_request = InferenceRequestSensor(
        task_id="wait_for_request",
        conn_id="edgeinfer_theta_default",
        request_id="{{ ti.xcom_pull(task_ids='start_request') }}",
        deferrable=True,
        poke_interval=5,
        timeout=3600,
    )

    @task
    def start_batch() -> str:
        """A native batch submitted through the hook: the sensor waits on its id."""
        from airflow_provider_edgeinfer.hooks.infrai import InfraiHook

        requests = [
            {
                "custom_id": f"question-{n}",
                "capability": "chat.completions",
                "body": {"model": "deepseek-chat", "messages": [{"role": "user", "content": question}]},
            }
            for n, question in enumerate(["What is Airflow?", "What is a DAG?", "What is a sensor?"])
        ]
        with InfraiHook() as hook:
            return hook.run(hook.api.batch_submit(requests)).data.batch_id

    wait_for_batch = BatchSensor(
        task_id="wait_for_batch",
        conn_id="edgeinfer_infrai_default",
        batch_id="{{ ti.xcom_pull(task_ids='start_batch') }}",
        min_success_ratio=0.95,
        deferrable=True,
        poke_interval=5,
        timeout=3600,
    )

    @task
    def save_transcript(request_id: str, params: dict[str, str]) -> str:
        """The sensor returns the request's state and cost; the transcript is read once, here, and
        written to a file: a task's return value is logged, so it returns only where it wrote."""
        from airflow_provider_edgeinfer.hooks.theta import ThetaHook

        with ThetaHook() as hook:
            job = hook.run(hook.api.status(request_id))
        os.makedirs(params["output_path"], exist_ok=True)
        path = os.path.join(params["output_path"], "transcript.json")
        with open(path, "w") as handle:
            json.dump({"request_id": request_id, "output": job.output}, handle)
        return path

    request_id = start_request()
    request_id >> wait_for_request >> save_transcript(request_id)
    start_batch() >> wait_for_batch
