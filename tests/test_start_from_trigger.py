"""Why InferenceOperator always submits on a worker: what Airflow's scheduler gives a task that starts
in the triggerer (``start_from_trigger``), read from the scheduler's own objects.

``DagRun.schedule_tis`` defers a task instance straight into the triggerer when
``TaskInstance.defer_task`` finds ``TaskInstance.start_trigger_args``; the trigger row is made from
exactly those arguments. For a task that is not mapped they are the task's own. For a mapped task they
are the operator class's (or ``partial``'s) fixed arguments for every map index: the per-index
expansion of the start arguments is not implemented on the scheduler's side. A mapped inference started
there would submit the same request for every index, so the provider does not offer the mode
(docs/production.md). If these tests fail, Airflow changed this and the mode is worth revisiting.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.airflow_versions import since_airflow

pytestmark = since_airflow("3.3", "Rendering a started-from-trigger task's templated trigger kwargs")

FIXED = "airflow.providers.standard.triggers.temporal.TimeDeltaTrigger"
PER_TASK = "example.PerTaskTrigger"


def _scheduler_start_args(dag: Any, task_id: str, map_index: int) -> Any:
    """The start arguments the scheduler's task instance would defer with (``defer_task``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import DagSerialization

    scheduler_dag = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    ti = TaskInstance(
        task=scheduler_dag.get_task(task_id), run_id="run", map_index=map_index, dag_version_id=uuid.uuid4()
    )
    return ti.start_trigger_args


def _kwargs(args: Any) -> Any:
    from airflow.serialization.serialized_objects import BaseSerialization

    return BaseSerialization.deserialize(args.trigger_kwargs)


def _prompt_dag() -> Any:
    from datetime import timedelta

    from airflow.sdk import DAG, BaseOperator
    from airflow.triggers.base import StartTriggerArgs

    class PromptOperator(BaseOperator):
        """Starts in the triggerer with its own prompt in the trigger's kwargs."""

        start_trigger_args = StartTriggerArgs(
            trigger_cls=FIXED,
            trigger_kwargs={"delta": timedelta(seconds=1)},
            next_method="execute_complete",
        )

        def __init__(self, *, prompt: str, start_from_trigger: bool = False, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.prompt = prompt
            self.start_from_trigger = start_from_trigger
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=PER_TASK, trigger_kwargs={"prompt": prompt}, next_method="execute_complete"
            )

        def execute(self, context: Any) -> None:
            raise AssertionError("starts in the triggerer")

    with DAG("start_from_trigger_probe", schedule=None) as dag:
        PromptOperator(task_id="plain", prompt="p", start_from_trigger=True)
        PromptOperator.partial(task_id="mapped", start_from_trigger=True).expand(prompt=["a", "b"])
    return dag


def test_a_task_that_is_not_mapped_starts_with_its_own_arguments() -> None:
    args = _scheduler_start_args(_prompt_dag(), "plain", -1)
    assert args.trigger_cls == PER_TASK
    assert _kwargs(args) == {"prompt": "p"}


@pytest.mark.parametrize("map_index", [0, 1])
def test_every_map_index_starts_with_the_same_fixed_arguments(map_index: int) -> None:
    args = _scheduler_start_args(_prompt_dag(), "mapped", map_index)
    assert args.trigger_cls == FIXED
    assert "prompt" not in _kwargs(args)


def test_inference_operator_refuses_to_start_from_the_trigger() -> None:
    """The operator takes no ``start_from_trigger``: asking for it fails when the DAG is parsed, in
    both forms, instead of starting a mapped index with another index's request."""
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    with pytest.raises(TypeError, match="start_from_trigger"):
        InferenceOperator(task_id="plain", conn_id="c", service="whisper", input={}, start_from_trigger=True)
    with pytest.raises(TypeError, match="start_from_trigger"):
        InferenceOperator.partial(task_id="mapped", conn_id="c", service="whisper", start_from_trigger=True)
