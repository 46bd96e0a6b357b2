"""The ETL example end to end: pending tickets read through the common SQL hooks, enriched by two
infrai batches, upserted back, marked done; on SQLite and on a real PostgreSQL server.

Each database runs the same story: the first run enriches every ticket but one the vendor refuses
(an empty body cannot be embedded), which stays pending; a second run pays for nothing and adds no
row; once the ticket is fixed, the third run enriches that ticket alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import load_dag, task_states
from tests.dags.postgres import PostgresServer, postgres_server

TICKETS = [
    ("Charged twice", "My card was charged twice for the November invoice, please refund one."),
    ("App crashes", "The desktop app crashes whenever I upload a file larger than 2 GB."),
    ("Locked out", ""),  # the embedding of an empty text is refused by the vendor
    ("Dark mode", "A dark mode for the dashboard would help during night shifts."),
]
TABLE = (
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL, "
    "status TEXT NOT NULL DEFAULT 'pending')"
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def _sqlite(tmp_path: Path) -> str:
    return json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "tickets.sqlite")})


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A hook on a fresh tickets database, also reachable as the connection ``tickets_db``."""
    if request.param == "sqlite":
        uri = _sqlite(tmp_path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        uri = server.fresh_database()
    monkeypatch.setenv("AIRFLOW_CONN_TICKETS_DB", uri)
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection("tickets_db").get_hook()
    hook.run(TABLE)
    rows = [(n, subject, body) for n, (subject, body) in enumerate(TICKETS, start=1)]
    hook.insert_rows("tickets", rows, target_fields=["id", "subject", "body"])
    return hook


def _infrai_submits(emulator: Any) -> int:
    return int(emulator.state.snapshot()["requests"].get("infrai.batch.submit", 0))


def _items_sent(emulator: Any) -> int:
    """Items paid for: every item of every native batch the emulator accepted."""
    from airflow_provider_edgeinfer.emulator.infrai import BATCHES_TABLE

    return sum(len(batch.items) for batch in emulator.state.tables[BATCHES_TABLE].values())


def _run(tmp_path: Path) -> Any:
    return load_dag("edgeinfer_ticket_enrichment").test(
        run_conf={"db_conn_id": "tickets_db", "output_root": str(tmp_path / "out")}
    )


def test_enrichment_is_idempotent_and_leaves_failures_pending(
    airflow_db: None, emulated: Any, database: Any, tmp_path: Path
) -> None:
    run = _run(tmp_path)
    assert task_states(run) == {
        "pending_tickets": "success",
        "summarize": "success",
        "embed": "success",
        "write_back": "success",
    }
    assert _infrai_submits(emulated) == 2
    first_items = _items_sent(emulated)
    assert first_items == 2 * len(TICKETS)
    rows = database.get_records("SELECT ticket_id, summary, category, embedding FROM ticket_enrichment")
    assert sorted(r[0] for r in rows) == [1, 2, 4]
    assert all(r[1] and r[2] and len(json.loads(r[3])) > 100 for r in rows)
    status = dict(database.get_records("SELECT id, status FROM tickets"))
    assert status == {1: "done", 2: "done", 3: "pending", 4: "done"}

    # Again: the pending ticket is retried, done ones are not paid twice. Ticket 1 lost its "done"
    # mark (as if the run had died between the upsert and the mark): it is enriched again and its
    # row replaced, not duplicated.
    database.run("UPDATE tickets SET status = 'pending' WHERE id = 1")
    run = _run(tmp_path)
    assert task_states(run)["write_back"] == "success"
    assert _infrai_submits(emulated) == 4
    assert _items_sent(emulated) - first_items == 4  # tickets 1 and 3, once per batch
    rows = database.get_records("SELECT ticket_id, run_id FROM ticket_enrichment ORDER BY ticket_id")
    assert [r[0] for r in rows] == [1, 2, 4]
    assert rows[0][1] == run.run_id != rows[1][1]

    # The ticket is fixed: the next run enriches it alone, with an upsert that adds its one row.
    database.run("UPDATE tickets SET body = 'I cannot log in since the password reset.' WHERE id = 3")
    run = _run(tmp_path)
    assert task_states(run)["write_back"] == "success"
    assert database.get_first("SELECT COUNT(*) FROM ticket_enrichment")[0] == 4
    assert {s for _, s in database.get_records("SELECT id, status FROM tickets")} == {"done"}

    # Nothing left: the run skips before any batch, and pays for nothing.
    before = (_infrai_submits(emulated), _items_sent(emulated))
    run = _run(tmp_path)
    assert task_states(run) == {
        "pending_tickets": "skipped",
        "summarize": "skipped",
        "embed": "skipped",
        "write_back": "skipped",
    }
    assert (_infrai_submits(emulated), _items_sent(emulated)) == before
    assert database.get_first("SELECT COUNT(*) FROM ticket_enrichment")[0] == 4


def test_the_shipped_demo_database_is_seeded_and_enriched(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    run = load_dag("edgeinfer_ticket_enrichment").test(
        run_conf={"demo_db_path": str(tmp_path / "demo.sqlite"), "output_root": str(tmp_path / "out")}
    )
    assert set(task_states(run).values()) == {"success"}
    import sqlite3

    with sqlite3.connect(tmp_path / "demo.sqlite") as db:
        assert {s for (s,) in db.execute("SELECT status FROM tickets")} == {"done"}
        categories = {c for (c,) in db.execute("SELECT category FROM ticket_enrichment")}
    assert categories <= {"billing", "bug", "account", "feature", "other"} and len(categories) > 1


def test_lineage_events_name_the_tables_read_and_written(
    airflow_db: None, emulated: Any, tmp_path: Path
) -> None:
    """With the OpenLineage provider on, the batches' events name the tickets table they read beside
    their files, and write_back's names the tables it writes (the DAG's inlets and outlets)."""
    pytest.importorskip("airflow.providers.openlineage")
    import os
    import subprocess
    import sys

    from tests.dags.conftest import DAGS

    events = tmp_path / "events.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}
    # A process of its own: the OpenLineage listener is registered when Airflow loads its plugins,
    # which this process did long ago with OpenLineage off.
    runner = Path(__file__).with_name("lineage_run.py")
    dag_file = DAGS / "edgeinfer_ticket_enrichment.py"
    command = [
        sys.executable,
        str(runner),
        str(dag_file),
        str(tmp_path / "out"),
        str(tmp_path / "tickets.sqlite"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    complete: dict[str, dict[str, Any]] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and "job" in event:
            complete[event["job"]["name"].rpartition(".")[2]] = event

    def names(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
        return {(d["namespace"], d["name"]) for d in event[side]}

    from airflow_provider_edgeinfer.example_dags.edgeinfer_ticket_enrichment import DEMO_DB_PATH

    database = f"sqlite://{DEMO_DB_PATH}"
    for batch in ("summarize", "embed"):
        files, tables = (
            sorted(n for n in names(complete[batch], "inputs") if (n[0] == "file") == f) for f in (1, 0)
        )
        assert tables == [(database, "main.tickets")]
        assert [name.rpartition("/")[2] for _, name in files] == ["inputs.jsonl"]  # the items, as sent
        assert any(name.endswith("/results.jsonl") for _, name in names(complete[batch], "outputs"))
        assert "edgeinfer" in complete[batch]["run"]["facets"]
    assert names(complete["write_back"], "outputs") == {
        (database, "main.ticket_enrichment"),
        (database, "main.tickets"),
    }
