"""TaskFlow decorators: ``@task.edgeinfer_batch`` and ``@task.edgeinfer_inference``.

Registered in the provider metadata (``task-decorators``), so Airflow offers them as ``task.<name>``
once the provider is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.bases.decorator import DecoratedOperator
from airflow.sdk.definitions._internal.types import SET_DURING_EXECUTION

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReturnedArgument(DecoratedOperator):
    """A DecoratedOperator that fills one argument of its operator with what the function returns.

    Subclass it first, then the operator, and name the argument::

        class _Decorated(ReturnedArgument, InferenceOperator):
            returned_argument = "input"
    """

    #: The operator's argument the function's return value becomes.
    returned_argument: ClassVar[str]
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        operator = cls.__bases__[-1]
        if not issubclass(operator, BaseOperator) or issubclass(operator, DecoratedOperator):
            raise TypeError(f"{cls.__name__} must subclass ReturnedArgument, then the operator it decorates")
        # What the function returns is data (transcripts, tickets), never Jinja: a stray "{{" stays text.
        cls.template_fields = tuple(
            name
            for name in (*DecoratedOperator.template_fields, *operator.template_fields)
            if name != cls.returned_argument
        )

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs[self.returned_argument] = SET_DURING_EXECUTION
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def call_function(self, context: Context) -> Any:
        """The function's return value, called with its arguments and the task context as Airflow does."""
        from airflow.providers.common.compat.sdk import determine_kwargs  # airflow.utils on 3.1
        from airflow.sdk.definitions.context import context_merge

        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        return self.python_callable(*self.op_args, **kwargs)
