"""The few Airflow 3 REST API v2 calls the harness makes (the simple auth manager, all users admins).

With ``[core] simple_auth_manager_all_admins = True`` the API server's middleware attaches an admin
token to every request (Airflow 3.2 on), so no login is needed; Airflow 3.1 hands the token out at
``/auth/token`` instead. The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

RUN_ID = "reliability"
#: The API's largest page (``[api] maximum_page_limit`` default).
PAGE = 100


class _AllAdminsToken(httpx.Auth):
    """On a 401 (Airflow 3.1, which attaches no token itself), the all-admins token, then again."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Any:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code != 401:
            return
        issued = httpx.get(f"{self.base_url}/auth/token", timeout=30)
        if issued.is_success:
            self.token = str(issued.json()["access_token"])
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


class AirflowAPI:
    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=f"{base_url}/api/v2", timeout=30, auth=_AllAdminsToken(base_url))

    def close(self) -> None:
        self.client.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()

    def dag_exists(self, dag_id: str) -> bool:
        return self.client.get(f"/dags/{dag_id}").status_code == 200

    def trigger(self, dag_id: str) -> str:
        body = {"dag_run_id": RUN_ID, "logical_date": None}
        self._json(self.client.post(f"/dags/{dag_id}/dagRuns", json=body))
        return RUN_ID

    def dag_run_state(self, dag_id: str, run_id: str = RUN_ID) -> str:
        return str(self._json(self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}"))["state"])

    def task_instances(
        self, dag_id: str, run_id: str = RUN_ID, state: str | None = None
    ) -> list[dict[str, Any]]:
        """Every task instance of the run (all pages), optionally of one state."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE}
        if state:
            params["state"] = state
        for offset in range(0, 100_000, PAGE):  # bounded: far more than any run here has
            page = self._json(
                self.client.get(
                    f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={**params, "offset": offset}
                )
            )
            out.extend(page["task_instances"])
            if offset + PAGE >= page["total_entries"]:
                break
        return out

    def mark(
        self, dag_id: str, task_id: str, new_state: str, map_index: int = -1, run_id: str = RUN_ID
    ) -> None:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        # Setting a state is idempotent: a busy SQLite's 500 is worth another try.
        for attempt in range(5):
            response = self.client.patch(path, json={"new_state": new_state})
            if response.status_code < 500 or attempt == 4:
                break
            time.sleep(1.0)
        self._json(response)

    def xcom_entries(self, dag_id: str, run_id: str = RUN_ID) -> list[dict[str, Any]]:
        """All XCom entries of the run with their values (``~`` is the API's "any task")."""
        out: list[dict[str, Any]] = []
        for offset in range(0, 100_000, PAGE):
            page = self._json(
                self.client.get(
                    f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries",
                    params={"limit": PAGE, "offset": offset},
                )
            )
            out.extend(page["xcom_entries"])
            if offset + PAGE >= page["total_entries"]:
                break
        return out

    def xcom_value(self, entry: dict[str, Any]) -> Any:
        path = (
            f"/dags/{entry['dag_id']}/dagRuns/{entry['run_id']}/taskInstances/{entry['task_id']}"
            f"/xcomEntries/{entry['key']}"
        )
        # Deserialized and not stringified: the value comes back as JSON, as the task pushed it.
        params = {"map_index": entry.get("map_index", -1), "deserialize": True, "stringify": False}
        return self._json(self.client.get(path, params=params)).get("value")

    def rendered_fields(self, ti: dict[str, Any]) -> Any:
        return ti.get("rendered_fields")
