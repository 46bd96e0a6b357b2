"""Read-only questions to Airflow's metadata database (PostgreSQL) during a production-shaped run.

The REST API pages 100 task instances at a time and does not say which triggerer runs a trigger; a
few SQL counts do both cheaply while two thousand tasks run. Nothing here writes.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extras

from benchmarks.reliability.airflow_api import RUN_ID


class MetaDB:
    def __init__(self, port: int) -> None:
        self.conn = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="airflow")
        self.conn.autocommit = True  # every question sees the latest commits

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]

    def states(self, dag_id: str, run_id: str = RUN_ID) -> dict[str, int]:
        """Task instances of one run by state (``none`` for not yet scheduled)."""
        rows = self._rows(
            "SELECT coalesce(state, 'none') AS state, count(*) AS n FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s GROUP BY 1",
            dag_id,
            run_id,
        )
        return {str(r["state"]): int(r["n"]) for r in rows}

    def task_rows(self, dag_id: str, run_id: str = RUN_ID) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT task_id, map_index, state, try_number FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index",
            dag_id,
            run_id,
        )

    def retried(self, dag_id: str, run_id: str = RUN_ID) -> int:
        rows = self._rows(
            "SELECT count(*) AS n FROM task_instance WHERE dag_id = %s AND run_id = %s AND try_number > 1",
            dag_id,
            run_id,
        )
        return int(rows[0]["n"])

    def run_state(self, dag_id: str, run_id: str = RUN_ID) -> str | None:
        rows = self._rows("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return str(rows[0]["state"]) if rows else None

    def run_window(self, dag_id: str, run_id: str = RUN_ID) -> float:
        """Seconds from the run's start to its last task's end (0 if it has not ended)."""
        rows = self._rows(
            "SELECT extract(epoch FROM max(ti.end_date) - dr.start_date) AS s FROM task_instance ti "
            "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s GROUP BY dr.start_date",
            dag_id,
            run_id,
        )
        return float(rows[0]["s"] or 0) if rows else 0.0

    def trigger_assignment(self, dag_id: str, run_id: str = RUN_ID) -> dict[str, tuple[int, int | None]]:
        """For each deferred task of the run: (its trigger, the triggerer job running it or None)."""
        rows = self._rows(
            "SELECT ti.task_id, t.id, t.triggerer_id FROM task_instance ti "
            "JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.state = 'deferred'",
            dag_id,
            run_id,
        )
        return {str(r["task_id"]): (int(r["id"]), r["triggerer_id"]) for r in rows}

    def trigger_ids_on(self, triggerer_job: int) -> set[int]:
        rows = self._rows("SELECT id FROM trigger WHERE triggerer_id = %s", triggerer_job)
        return {int(r["id"]) for r in rows}

    def triggerer_jobs(self) -> dict[int, str]:
        """Running triggerer jobs -> the harness's process name (the host name's last label)."""
        rows = self._rows(
            "SELECT id, hostname FROM job WHERE job_type = 'TriggererJob' AND state = 'running'"
        )
        return {int(r["id"]): str(r["hostname"]).rsplit(".", 1)[-1] for r in rows}

    def triggers_on(self, triggerer_job: int) -> int:
        rows = self._rows("SELECT count(*) AS n FROM trigger WHERE triggerer_id = %s", triggerer_job)
        return int(rows[0]["n"])
