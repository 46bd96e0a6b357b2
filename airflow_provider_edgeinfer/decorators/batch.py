"""``@task.edgeinfer_batch``: the decorated function returns a batch's inputs; BatchOperator runs them.

The function runs once per try on the worker. Its list is written to ``output_path/inputs.jsonl``
before anything is sent, and the batch reads its items from there: a deferred task resumes (and a
retry of it recognises what was already sent) from that file, not by calling the function again.
So the function must be deterministic across tries (no ``datetime.now()`` in an input): a retry
whose inputs differ from an unfinished batch's is refused rather than paid for twice.

Imported when DAG files are parsed: nothing heavier than BatchOperator's own module loads here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.decorator import TaskDecorator, task_decorator_factory

from airflow_provider_edgeinfer.decorators import ReturnedArgument
from airflow_provider_edgeinfer.operators.batch import BatchOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

#: Where the function's inputs are kept, under ``output_path``, beside ``results.jsonl``.
INPUTS_FILE = "inputs.jsonl"


class _BatchDecoratedOperator(ReturnedArgument, BatchOperator):
    """BatchOperator whose ``inputs`` are what ``python_callable`` returns (a list of input objects)."""

    returned_argument = "inputs"
    custom_operator_name: str = "@task.edgeinfer_batch"

    def _inputs_file(self) -> ObjectStoragePath:
        from airflow_provider_edgeinfer.storage import as_storage_path

        return as_storage_path(self.output_path, conn_id=self.output_conn_id) / INPUTS_FILE

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        returned = self.call_function(context)
        if not isinstance(returned, list | tuple):
            raise InputValidationError(
                f"{self.custom_operator_name} function {self.python_callable.__name__} returned "
                f"{type(returned).__name__}; it must return a list of input objects",
                hint="For a JSONL file or a glob of files, use BatchOperator(inputs=...) instead.",
            )
        target = self._inputs_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as out:  # type: ignore[no-untyped-call]
            for entry in returned:
                out.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.log.info("%d inputs written to %s", len(returned), target)
        self.inputs = str(target)
        return BatchOperator.execute(self, context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        # A resumed task is a fresh operator: its inputs are the file the first half wrote.
        self.inputs = str(self._inputs_file())
        return BatchOperator.execute_complete(self, context, event)


def edgeinfer_batch_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function returning a batch's inputs into a BatchOperator task.

    Every BatchOperator argument but ``inputs`` is accepted (``conn_id``, ``service``,
    ``output_path`` are required)::

        @task.edgeinfer_batch(
            conn_id="llm",  # any edgeinfer connection
            service="chat.completions",
            output_path="s3://bucket/summaries/dt={{ ds }}/",
        )
        def summaries(rows: list[dict]) -> list[dict]:
            return [{"custom_id": str(r["id"]), "input": {...}} for r in rows]

    XCom receives BatchOperator's summary (counts, cost, ``results_path``).

    :param python_callable: the decorated function; it runs on the worker and returns the batch's
        inputs (a list of input objects).
    :param kwargs: BatchOperator's arguments (and any operator's, such as ``retries``).
    """
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_BatchDecoratedOperator,
        **kwargs,
    )
