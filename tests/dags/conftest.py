"""Helpers for running DAGs under real Airflow (``dag.test()``, SQLite) against the emulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags_examples"


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    """The DAGs run against a strict emulator: a request its vendor contract does not allow fails."""
    return True


def load_dag(dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{dag_id}", DAGS / f"{dag_id}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
            for ti in dag_run.get_task_instances(session=session)
        }
