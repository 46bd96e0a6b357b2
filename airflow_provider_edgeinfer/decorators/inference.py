"""``@task.edgeinfer_inference``: the decorated function returns one input; InferenceOperator runs it.

The function runs on the worker before the submission; the task then defers as InferenceOperator
does, and a resumed task needs only the trigger's event, never the function again. A retry calls
the function again: it must return the same input for the retry to reattach to the request its
previous try made (the operator's fingerprint covers the input), so keep it deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory
from airflow.sdk.definitions._internal.types import SET_DURING_EXECUTION

from airflow_provider_edgeinfer.operators.inference import InferenceOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _InferenceDecoratedOperator(DecoratedOperator, InferenceOperator):
    """InferenceOperator whose ``input`` is what ``python_callable`` returns (one input object)."""

    # The returned input is data, never Jinja.
    template_fields: Sequence[str] = tuple(
        name
        for name in (*DecoratedOperator.template_fields, *InferenceOperator.template_fields)
        if name != "input"
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name: str = "@task.edgeinfer_inference"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            input=SET_DURING_EXECUTION,
            **kwargs,
        )

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import determine_kwargs  # airflow.utils on 3.1
        from airflow.sdk.definitions.context import context_merge

        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        self.input = self.python_callable(*self.op_args, **kwargs)
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
