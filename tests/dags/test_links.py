"""Extra links under real Airflow (dag.test, SQLite): they open pages on the connection's host (the
emulator serves them), every task kind that has a page links to it, and a vendor without pages gives
its tasks no link at all (so the UI shows no empty "Extra Links" heading)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dags.conftest import task_states

FIXTURES = Path(__file__).parent / "fixtures"


def _dags() -> Any:
    spec = importlib.util.spec_from_file_location(
        "edgeinfer_links_dags", FIXTURES / "edgeinfer_links_dags.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dags


def _links_as_the_ui_sees_them(run: Any, dag: Any) -> dict[str, dict[str, str | None]]:
    """Each task's links, read the way the API server reads them: from the serialized DAG."""
    from airflow.utils.session import create_session

    try:
        from airflow.serialization.serialized_objects import DagSerialization as serializer
    except ImportError:  # Airflow 3.1 names it SerializedDAG
        from airflow.serialization.serialized_objects import SerializedDAG as serializer

    serialized = serializer.from_dict(serializer.to_dict(dag))
    out: dict[str, dict[str, str | None]] = {}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            task = serialized.get_task(ti.task_id)
            out[ti.task_id] = {name: task.get_extra_links(ti, name) or None for name in task.extra_links}
    return out


def _xcom(run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(run_id=run.run_id, task_id=task_id, key=key).one()
        value = row.value
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def test_theta_tasks_link_to_pages_on_the_connections_host(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    dag = _dags()["theta"]
    run = dag.test(run_conf={"output_path": str(tmp_path)})
    assert set(task_states(run).values()) == {"success"}
    host = json.loads(emulated.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])["host"].rstrip("/")
    links = _links_as_the_ui_sees_them(run, dag)
    request_id = _xcom(run, "infer", "request_id")
    page = f"{host}/dashboard/ai/inference/request"
    assert links["infer"] == {"Vendor request": f"{page}/{request_id}"}
    assert links["wait_request"] == {"Vendor request": f"{page}/{request_id}"}
    assert links["batch"] == {"Vendor batch": page}
    assert links["wait_batch"] == {"Vendor batch": page}
    # The emulator serves the pages, so the links open in a local run.
    one = httpx.get(links["infer"]["Vendor request"] or "")
    assert one.status_code == 200 and request_id in one.text and "success" in one.text
    listing = httpx.get(page)
    assert listing.status_code == 200 and f'href="request/{request_id}"' in listing.text


@pytest.mark.parametrize("vendor", ["infrai", "octoai"])
def test_a_vendor_without_pages_gives_its_tasks_no_links(
    vendor: str, airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    dag = _dags()[vendor]
    assert all(not task.operator_extra_links for task in dag.tasks)
    run = dag.test(run_conf={"output_path": str(tmp_path)})
    assert set(task_states(run).values()) == {"success"}
    assert all(links == {} for links in _links_as_the_ui_sees_them(run, dag).values())


def test_real_hosts_link_to_the_vendors_dashboard() -> None:
    from airflow_provider_edgeinfer.clients.theta import BASE_URL, ThetaAPI

    assert ThetaAPI(BASE_URL).console_url("infr_rqst_1") == (
        "https://www.thetaedgecloud.com/dashboard/ai/inference/request/infr_rqst_1"
    )
    assert ThetaAPI("https://theta-gateway.example.com").console_url("a/b") == (
        "https://theta-gateway.example.com/dashboard/ai/inference/request/a%2Fb"
    )


def test_a_templated_connection_keeps_its_link() -> None:
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    op = InferenceOperator(task_id="t", conn_id="{{ params.conn }}", service="s", input={})
    assert [link.name for link in op.operator_extra_links] == ["Vendor request"]
