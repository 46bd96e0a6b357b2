"""Run every example DAG with distinctive fake credentials, then look for them everywhere.

Task and trigger logs (captured output), XComs, rendered template fields, trigger rows and their
reprs, and the text of errors caused by a wrong key: none may hold a key, a secret, a token or a
presigned-URL signature.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.state import VENDORS, Timing
from tests.dags.conftest import DAGS, load_dag, task_states

CANARY = f"LEAKCANARY{uuid.uuid4().hex[:12]}"


def _examples() -> list[str]:
    return sorted(p.stem for p in DAGS.glob("edgeinfer_*.py"))


def _database_text() -> str:
    """Everything Airflow persisted about the runs that could carry a value."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    chunks: list[str] = []
    with create_session() as session:
        for table, column in (
            ("xcom", "value"),
            ("rendered_task_instance_fields", "rendered_fields"),
            ("task_instance", "next_kwargs"),
            ("trigger", "kwargs"),
            ("trigger", "classpath"),
            ("log", "extra"),
        ):
            for (value,) in session.execute(text(f"SELECT {column} FROM {table}")):
                chunks.append(str(value))
    return "\n".join(chunks)


@pytest.fixture
def canaried(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    state = edgeinfer_emulator.state
    for vendor in VENDORS:
        state.keys[vendor] = f"{CANARY}-{vendor}-key"
        state.timing[vendor] = Timing(0.05, 0.2)
    state.omnitensor_secret = f"{CANARY}-omnitensor-secret"
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    return edgeinfer_emulator


def test_no_credential_reaches_logs_xcom_templates_or_triggers(
    airflow_db: None,
    canaried: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    ran = []
    for dag_id in _examples():
        dag = load_dag(dag_id)
        conf = {"output_path": str(tmp_path / dag_id)} if "output_path" in dag.params else {}
        run = dag.test(run_conf=conf)
        ran.append((dag_id, task_states(run)))
    assert ran and all(set(states.values()) == {"success"} for _, states in ran), ran

    captured = capfd.readouterr()
    haystack = "\n".join([captured.out, captured.err, caplog.text, _database_text()])
    # The scan is only worth something if the task logs were really captured.
    assert "succeeded, cost" in haystack
    assert CANARY not in haystack
    assert "signature=" not in haystack, "a presigned URL's signature was written somewhere"
    # The OmniTensor token the emulator issued never shows either.
    assert "Bearer " not in haystack.replace("Bearer ***", "")


def test_errors_and_reprs_carry_no_credential(canaried: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection
    from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger

    texts: list[str] = []
    for vendor in VENDORS:
        conn = json.loads(canaried.connections()[f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"])
        conn["password"] = f"{CANARY}-wrong-{vendor}"
        if vendor == "omnitensor":
            conn["extra"]["secret"] = f"{CANARY}-wrong-secret"
        monkeypatch.setenv(f"AIRFLOW_CONN_WRONG_{vendor.upper()}", json.dumps(conn))
        hook = hook_for_connection(f"wrong_{vendor}")
        ok, message = hook.test_connection()
        assert not ok, vendor
        texts += [
            message,
            repr(hook),
            repr(hook.api),
            repr(hook.get_conn()),
            repr(hook.credentials(hook.connection)),
        ]
        hook.close()
        trigger = InferenceTrigger(conn_id=f"wrong_{vendor}", request_id="r-1", deadline=0.0)
        texts += [repr(trigger), json.dumps(trigger.serialize()[1])]
    joined = "\n".join(texts)
    assert CANARY not in joined
