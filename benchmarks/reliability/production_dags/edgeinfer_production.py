"""DAGs of ``make production-check`` (PostgreSQL, CeleryExecutor, two schedulers and two triggerers).

- ``edgeinfer_production_mapped``: mapped deferred inferences over all four vendors; a triggerer is
  SIGKILLed while they wait, one scheduler and the API server are restarted while they run.
- ``edgeinfer_production_batch``: one BatchOperator task over Theta; its first try is SIGKILLed in the
  middle of its fan-out (it tells the harness its pid), the retry resumes from the manifest.
- ``edgeinfer_production_crash``: one inference per vendor on the ``crash`` queue, served by one Celery
  worker only; the emulator holds the answer to each submit call and the harness SIGKILLs that worker.
- ``edgeinfer_production_cancel``: four waits on Theta; of those on the triggerer that is killed, one
  is marked failed while it is dead, another after the other triggerer adopted it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

# On every Airflow process's PYTHONPATH (the reliability DAG folder, shared by both harnesses).
from harness_dags import THETA_WHISPER, announce, batch_task, harness_dag

# The bundle directory is on sys.path in every Airflow process; the harness imports the same module.
from production_inputs import (
    CANCEL_INPUTS,
    CRASH_QUEUE,
    VENDOR_CALLS,
    batch_inputs,
    crash_input,
    mapped_kwargs,
)

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

# An API-server restart on a loaded machine can fail the task runs talking to it (their supervisor
# times out and kills them), each costing a try: two tries ran out in a 2-core run.
RETRIES: dict[str, Any] = {"retries": 4, "retry_delay": timedelta(seconds=3)}


class MarkedBatchOperator(BatchOperator):
    """Tells the harness the pid of its first try, so the harness can SIGKILL it mid fan-out."""

    def execute(self, context: Context) -> Any:
        if int(context["ti"].try_number) == 1:
            announce("batch.json", {"pid": os.getpid()})
        return super().execute(context)


def _dag(dag_id: str, doc: str) -> Any:
    return harness_dag(dag_id, doc, tag="edgeinfer-production", max_active_tasks=256)


with _dag(
    "edgeinfer_production_mapped", "Mapped deferred inferences over four vendors, crashes around them."
):
    # Each succeeded inference ends in the triggerer: one task run on a worker (the submit), not two.
    InferenceOperator.partial(
        task_id="infer", deferrable=True, end_from_trigger=True, poll_interval=5.0, timeout=1800, **RETRIES
    ).expand_kwargs(mapped_kwargs())

with _dag("edgeinfer_production_batch", "One batch task, SIGKILLed mid fan-out; the retry resumes."):
    MarkedBatchOperator(
        inputs=batch_inputs(),
        poll_interval=10.0,
        timeout=1800,
        **RETRIES,
        **batch_task("edgeinfer-prod-batch"),
    )

with _dag("edgeinfer_production_crash", "Each vendor's submit call outlives its Celery worker."):
    for vendor, (conn_id, service) in VENDOR_CALLS.items():
        # Deferrable tasks of an answer-in-call vendor make the call in the triggerer; blocking ones
        # make it on the worker, which is what this DAG kills.
        InferenceOperator(
            task_id=vendor,
            conn_id=conn_id,
            service=service,
            input=crash_input(vendor),
            deferrable=vendor in ("theta", "octoai"),
            poll_interval=2.0,
            timeout=1800,
            queue=CRASH_QUEUE,
            priority_weight=1000,
            retries=1,
            retry_delay=timedelta(seconds=2),
        )

with _dag(
    "edgeinfer_production_cancel", "Marked failed around a triggerer's death: is the request cancelled?"
):
    for name, input_ in CANCEL_INPUTS.items():
        InferenceOperator(
            task_id=name,
            **THETA_WHISPER,
            input=input_,
            deferrable=True,
            poll_interval=2.0,
            timeout=1800,
            priority_weight=1000,
            # The emulator's faults are on: a dropped submit answer is resolved by the retry (listing).
            retries=2,
            retry_delay=timedelta(seconds=2),
        )
