"""``@task.edgeinfer_inference``: the decorated function returns one input; InferenceOperator runs it.

The function runs on the worker before the submission; the task then defers as InferenceOperator
does, and a resumed task needs only the trigger's event, never the function again. A retry calls
the function again: it must return the same input for the retry to reattach to the request its
previous try made (the operator's fingerprint covers the input), so keep it deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.decorator import TaskDecorator, task_decorator_factory

from airflow_provider_edgeinfer.decorators import ReturnedArgument
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _InferenceDecoratedOperator(ReturnedArgument, InferenceOperator):
    """InferenceOperator whose ``input`` is what ``python_callable`` returns (one input object)."""

    returned_argument = "input"
    custom_operator_name: str = "@task.edgeinfer_inference"

    def execute(self, context: Context) -> Any:
        self.input = self.call_function(context)
        # A wrong type is refused by the operator before anything is sent, naming the vendor.
        return InferenceOperator.execute(self, context)


def edgeinfer_inference_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> TaskDecorator:
    """Wrap a function returning one inference input into an InferenceOperator task.

    Every InferenceOperator argument but ``input`` is accepted (``conn_id`` and ``service`` are
    required)::

        @task.edgeinfer_inference(conn_id="llm", service="chat.completions")
        def summary(ticket: dict) -> dict:
            return {"model": "deepseek-chat", "messages": [{"role": "user", "content": ticket["body"]}]}

    XCom receives InferenceOperator's result (vendor, request id, state, cost, output or its path).

    :param python_callable: the decorated function; it runs on the worker and returns one inference input.
    :param kwargs: InferenceOperator's arguments (and any operator's, such as ``retries``).
    """
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_InferenceDecoratedOperator,
        **kwargs,
    )
