"""A DAG test as a user writes one with the emulator's pytest plugin (the documentation includes it).

``edgeinfer_emulator`` comes with the package; ``airflow_db`` is whatever initialises Airflow's
metadata database in your suite (here, ``tests/conftest.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    """Refuse anything the vendor's contract does not allow, as the real API would."""
    return True


@pytest.fixture
def vendors(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The four default connections point at the emulator for this test."""
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    return edgeinfer_emulator


def test_the_dag_writes_an_image_and_pays_once(airflow_db: None, vendors: Any, tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.example_dags.edgeinfer_octoai_sdxl import dag

    run = dag.test(run_conf={"output_path": str(tmp_path)})

    assert run.state == "success"
    assert list(tmp_path.rglob("*.png"))
    counters = vendors.counters()
    assert sum(counters["submissions"]["octoai"].values()) == 1
    assert counters["duplicates"]["octoai"] == {}


def test_the_dag_survives_a_flaky_vendor(airflow_db: None, vendors: Any, tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.example_dags.edgeinfer_octoai_sdxl import dag

    # Faults are set per vendor over the emulator's control API (or its command line flags); seeding
    # its dice makes the test repeatable.
    vendors.state.rng = random.Random(20261123)
    vendors.control("faults", {"vendor": "octoai", "rate_5xx": 0.2, "rate_429": 0.1, "retry_after": 0.05})

    run = dag.test(run_conf={"output_path": str(tmp_path)})

    assert run.state == "success"
    assert vendors.counters()["faults_injected"]
    assert vendors.counters()["duplicates"]["octoai"] == {}
