"""The TaskFlow decorators: registered in the provider metadata, and running under ``dag.test()``."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer import get_provider_info
from tests.dags.conftest import task_states

FIXTURES = Path(__file__).parent / "fixtures"


def _dag(dag_id: str) -> Any:
    path = FIXTURES / "edgeinfer_taskflow_test_dags.py"
    spec = importlib.util.spec_from_file_location("edgeinfer_taskflow_test_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def test_decorators_are_registered_and_resolve_as_task_attributes() -> None:
    from airflow.sdk import task

    from airflow_provider_edgeinfer.decorators.batch import edgeinfer_batch_task
    from airflow_provider_edgeinfer.decorators.inference import edgeinfer_inference_task

    names = {d["name"]: d["class-name"] for d in get_provider_info()["task-decorators"]}
    assert set(names) == {"edgeinfer_batch", "edgeinfer_inference"}
    assert task.edgeinfer_batch is edgeinfer_batch_task
    assert task.edgeinfer_inference is edgeinfer_inference_task


@pytest.mark.parametrize(
    ("module", "operator", "argument"),
    [("inference", "InferenceOperator", "input"), ("batch", "BatchOperator", "inputs")],
)
def test_a_decorated_operator_templates_all_but_the_returned_argument(
    module: str, operator: str, argument: str
) -> None:
    from airflow.sdk.bases.decorator import DecoratedOperator

    decorators = importlib.import_module(f"airflow_provider_edgeinfer.decorators.{module}")
    base = getattr(importlib.import_module(f"airflow_provider_edgeinfer.operators.{module}"), operator)
    decorated = next(
        c for c in vars(decorators).values() if isinstance(c, type) and c.__module__ == decorators.__name__
    )
    assert argument in base.template_fields
    expected = [*DecoratedOperator.template_fields, *(f for f in base.template_fields if f != argument)]
    assert list(decorated.template_fields) == expected


def test_the_returned_argument_mixin_comes_before_the_operator() -> None:
    from airflow_provider_edgeinfer.decorators import ReturnedArgument
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    with pytest.raises(TypeError, match="then the operator"):

        class _Backwards(InferenceOperator, ReturnedArgument):  # type: ignore[misc]
            returned_argument = "input"


def test_inference_decorator_runs_the_returned_input(airflow_db: None, emulated: Any) -> None:
    dag = _dag("edgeinfer_test_taskflow_inference")
    run = dag.test()
    assert task_states(run) == {"ticket": "success", "summarize": "success"}
    assert emulated.state.snapshot()["requests"]["infrai.chat.completions"] == 1
    assert "input" not in dag.get_task("summarize").template_fields  # data, never Jinja


def test_batch_decorator_keeps_its_inputs_beside_the_results(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = _dag("edgeinfer_test_taskflow_batch").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"embed": "success"}
    kept = [json.loads(line) for line in (tmp_path / "inputs.jsonl").read_text().splitlines()]
    assert kept[0] == {
        "custom_id": "doc-0",
        "input": {"model": "text-embedding-3-small", "input": "first {{ ds }}"},
    }
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["custom_id"] for r in rows) == ["doc-0", "doc-1", "doc-2"]
    assert all(r["state"] == "succeeded" for r in rows)
    assert {r["input_ref"].rpartition("/")[2] for r in rows} == {f"inputs.jsonl:{n}" for n in (1, 2, 3)}
    assert emulated.state.snapshot()["requests"]["infrai.batch.submit"] == 1


def test_batch_decorator_refuses_a_function_that_returns_no_list(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = _dag("edgeinfer_test_taskflow_batch_not_a_list").test(run_conf={"output_path": str(tmp_path)})
    assert task_states(run) == {"embed": "failed"}
    assert emulated.state.snapshot()["requests"].get("infrai.batch.submit", 0) == 0
    assert not (tmp_path / "inputs.jsonl").exists()
