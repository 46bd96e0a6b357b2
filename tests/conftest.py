"""Suite-wide setup: an isolated AIRFLOW_HOME (SQLite) before anything imports Airflow."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

# The suite's own temporary directory: the example DAGs write under the system's temporary
# directory, where a `make demo` (or another suite) on the same machine leaves its batches behind.
_TMP = tempfile.mkdtemp(prefix="edgeinfer-tests-")
# Others may pass through (a PostgreSQL server run as its own user keeps its files in here).
os.chmod(_TMP, 0o711)
os.environ["TMPDIR"] = _TMP
tempfile.tempdir = _TMP
_HOME = tempfile.mkdtemp(prefix="edgeinfer-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME}/airflow.db")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_REPO, "dags_examples"))
# Two bundles: the shipped examples, and DAGs that exist only to exercise the operators.
os.environ.setdefault(
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
    json.dumps(
        [
            {
                "name": "examples",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": os.path.join(_REPO, "dags_examples")},
            },
            {
                "name": "test_dags",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": os.path.join(_REPO, "tests", "dags", "fixtures")},
            },
        ]
    ),
)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh SQLite metadata database for the session."""
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)


@pytest.fixture
def emulated(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The emulator with the four default connections pointing at it."""
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    yield edgeinfer_emulator
