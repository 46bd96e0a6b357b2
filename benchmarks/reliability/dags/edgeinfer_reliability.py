"""DAGs of the reliability run (``make reliability``); the emulator stands in for Theta EdgeCloud.

- ``edgeinfer_reliability_mapped``: 200 mapped whisper inferences; the harness SIGKILLs the triggerer
  while they are deferred. Every one must succeed, each submitted once.
- ``edgeinfer_reliability_reattach``: one inference whose first try hangs right after submitting
  (before deferring) and tells the harness its pid, which SIGKILLs it; the retry must reattach.
- ``edgeinfer_reliability_batch``: one BatchOperator task of 1,000 whisper items (fan-out from the
  worker, then one BatchTrigger), deferred while the triggerer is SIGKILLed.
- ``edgeinfer_reliability_cancel``: one inference the harness marks failed through the REST API while
  it is deferred; the trigger's ``on_kill`` must cancel the remote request.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from harness_dags import THETA_WHISPER, announce, batch_task, harness_dag

# The bundle directory is on sys.path in every Airflow process; the harness imports the same module.
from reliability_inputs import CANCEL_INPUT, REATTACH_INPUT, batch_inputs, mapped_inputs

from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_edgeinfer.clients.core import Job

#: Upper bound of the deliberate hang: if nobody kills the task, it simply carries on.
HANG_SECONDS = 300

COMMON: dict[str, Any] = {
    **THETA_WHISPER,
    "deferrable": True,
    "poll_interval": 2.0,
    "timeout": 600,
    "retries": 2,
    "retry_delay": timedelta(seconds=2),
}


class HangAfterSubmitOperator(InferenceOperator):
    """First try: submit, record, tell the harness its pid, then hang where a crash hurts most.

    The hang sits between the vendor accepting the request and the task deferring: a naive operator
    would submit again on retry and pay twice.
    """

    def execute(self, context: Context) -> Any:
        self._try_number = int(context["ti"].try_number)
        return super().execute(context)

    def _submit(self, *args: Any, **kwargs: Any) -> tuple[Job, float]:
        # Pass-through arguments: the base signature may grow (uploads) without breaking this test.
        job, submitted_at = super()._submit(*args, **kwargs)
        if self._try_number == 1 and announce(
            "submitted.json", {"pid": os.getpid(), "request_id": job.request_id}
        ):
            self.log.info("submitted %s; hanging until the harness kills this process", job.request_id)
            time.sleep(HANG_SECONDS)
        return job, submitted_at


def _dag(dag_id: str, doc: str) -> Any:
    return harness_dag(dag_id, doc, tag="edgeinfer-reliability", max_active_tasks=64)


with _dag("edgeinfer_reliability_mapped", "200 mapped inferences; the triggerer is SIGKILLed mid-run."):
    InferenceOperator.partial(task_id="transcribe", **COMMON).expand(input=mapped_inputs())

with _dag("edgeinfer_reliability_reattach", "SIGKILL after submit, before defer; the retry reattaches."):
    # Highest priority: the kill should land while the mapped tasks are still in flight.
    HangAfterSubmitOperator(task_id="transcribe", input=REATTACH_INPUT, priority_weight=1000, **COMMON)

with _dag("edgeinfer_reliability_cancel", "Marked failed while deferred; on_kill cancels the request."):
    InferenceOperator(task_id="transcribe", input=CANCEL_INPUT, priority_weight=1000, **COMMON)

with _dag("edgeinfer_reliability_batch", "1,000 items in one task; the triggerer is SIGKILLed mid-run."):
    BatchOperator(
        inputs=batch_inputs(),
        poll_interval=5.0,
        timeout=900,
        retries=2,
        retry_delay=timedelta(seconds=2),
        **batch_task("edgeinfer-rel-batch"),
    )
