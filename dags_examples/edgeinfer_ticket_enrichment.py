"""Ticket enrichment (ETL): new support tickets read from SQL, summarised, classified and embedded.

Every hour the DAG reads the tickets still ``pending`` (through Airflow's common SQL hooks, so any
database with a SQL provider works: SQLite, PostgreSQL, ...), asks a chat model for a summary and a
category and an embedding model for a vector, both as batches (``@task.edgeinfer_batch``, a
BatchOperator: one native batch each on infrai), then writes the results back with an upsert keyed
by the ticket id and marks those tickets ``done``.

- **Idempotent.** The upsert replaces a ticket's row instead of adding one, so running the DAG
  twice leaves one row per ticket; a ticket is marked done only once its enrichment is written, and
  a done ticket is never read again, so nothing is paid for twice.
- **Failures stay pending.** A ticket the vendor could not enrich (its item failed in either batch)
  keeps its ``pending`` status and is picked up by the next run; the others are written.
- **Tables.** ``tickets(id, subject, body, status)`` is yours; ``ticket_enrichment(ticket_id,
  summary, category, embedding, cost_usd, run_id)`` is created if missing.
- **Lineage.** With the OpenLineage provider installed, the tasks' events name the tables: the
  batches read ``tickets`` (their ``inlets``), ``write_back`` writes ``ticket_enrichment`` and
  ``tickets`` (its ``outlets``), beside the batches' files. Inlets and outlets are fixed when the
  DAG is parsed, so they name the shipped demo database (``TICKETS_TABLE``, ``ENRICHMENT_TABLE``);
  on your database declare your tables there, on PostgreSQL as Airflow assets
  (``Asset("postgres://host:5432/db/public/tickets")``, which OpenLineage names ``db.public.tickets``
  on ``postgres://host:5432``).

**As shipped** (``make demo``, the Trigger button): with ``db_conn_id`` empty it uses a local SQLite
file (``demo_db_path``) seeded with sample tickets. Point ``db_conn_id`` at a SQLite or PostgreSQL
connection (``AIRFLOW_CONN_TICKETS_DB='postgresql://user:pass@host:5432/db'``) to run it on yours.
``schedule="@hourly"`` with ``catchup=False``: it only ever needs the rows pending now.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

log = logging.getLogger(__name__)
DEMO_ROOT = os.path.join(tempfile.gettempdir(), "edgeinfer-demo")
CATEGORIES = ("billing", "bug", "account", "feature", "other")
SUMMARY_PROMPT = (
    "Summarise this support ticket in one sentence, then classify it. Answer as JSON: "
    '{"summary": "...", "category": "one of ' + ", ".join(CATEGORIES) + '"}'
)
SAMPLE_TICKETS = [
    ("Charged twice", "My card was charged twice for the November invoice, billing please refund one."),
    ("App crashes on upload", "The bug: uploading a 2 GB file crashes the desktop app every time."),
    ("Cannot log in", "My account is locked after a password reset and the reset link has expired."),
    ("Dark mode", "Feature request: a dark mode for the dashboard would help during night shifts."),
    ("Invoice address", "Please change the billing address on future invoices to our new office."),
    ("Export is empty", "Exporting the report to CSV gives an empty file since yesterday, a bug?"),
]
ENRICHMENT_DDL = (
    "CREATE TABLE IF NOT EXISTS ticket_enrichment (ticket_id INTEGER PRIMARY KEY, summary TEXT, "
    "category TEXT, embedding TEXT, cost_usd DOUBLE PRECISION, run_id TEXT)"
)
DEMO_DB_PATH = os.path.join(DEMO_ROOT, "tickets.sqlite")


def _demo_table(name: str) -> list[Any]:
    """The OpenLineage dataset of a table of the demo's SQLite file (OpenLineage has no naming of
    its own for SQLite: the file is the namespace, ``main.<table>`` the name); none without the
    OpenLineage client (lineage is the optional ``openlineage`` extra)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    dataset = Dataset(namespace=f"sqlite://{DEMO_DB_PATH}", name=f"main.{name}")
    return [] if dataset is None else [dataset]


TICKETS_TABLE = _demo_table("tickets")
ENRICHMENT_TABLE = _demo_table("ticket_enrichment")
#: Where this run's batches write: one directory per run, so a re-run never mixes two runs' inputs.
RUN_OUTPUT = "{{ params.output_root.rstrip('/') }}/{{ run_id | replace(':', '-') | replace('+', '-') }}"


def _database(params: dict[str, Any]) -> Any:
    """The DbApiHook of ``db_conn_id``, or of the local demo SQLite file (created and seeded)."""
    if params["db_conn_id"]:
        from airflow.sdk import BaseHook

        # log_sql=False: statements carry model outputs (summaries), which no log line may hold.
        return BaseHook.get_connection(str(params["db_conn_id"])).get_hook(hook_params={"log_sql": False})
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    path = os.path.abspath(str(params["demo_db_path"]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # A connection for this task process only (SqliteHook reads its file from a connection id).
    os.environ["AIRFLOW_CONN_EDGEINFER_DEMO_TICKETS"] = json.dumps({"conn_type": "sqlite", "host": path})
    hook = SqliteHook(sqlite_conn_id="edgeinfer_demo_tickets", log_sql=False)
    hook.run(
        "CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, "
        "body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending')"
    )
    if not hook.get_first("SELECT COUNT(*) FROM tickets")[0]:
        hook.insert_rows("tickets", SAMPLE_TICKETS, target_fields=["subject", "body"])
    return hook


def _category(answer: str) -> tuple[str, str]:
    """(summary, category) from the model's answer: its JSON, or the text and the first category it names."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("summary"), str):
        category = str(parsed.get("category", "")).lower()
        return parsed["summary"], category if category in CATEGORIES else "other"
    lowered = answer.lower()
    return answer, next((c for c in CATEGORIES if c in lowered), "other")


def _succeeded(results_path: str) -> dict[str, dict[str, Any]]:
    """custom_id -> row of every item that succeeded in a batch's ``results.jsonl``."""
    from airflow_provider_edgeinfer.storage import as_storage_path

    out: dict[str, dict[str, Any]] = {}
    with as_storage_path(results_path, "results_path").open("r") as rows:
        for line in rows:
            row = json.loads(line)
            if row.get("state") == "succeeded" and isinstance(row.get("output"), dict):
                out[str(row["custom_id"])] = row
    return out


with DAG(
    dag_id="edgeinfer_ticket_enrichment",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    max_active_runs=1,  # two runs at once would both read the same pending tickets
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["edgeinfer", "infrai", "batch", "etl", "example"],
    params={
        "db_conn_id": Param(
            None,
            type=["null", "string"],
            description="SQL connection holding the tickets table; empty: a local SQLite demo file",
        ),
        "demo_db_path": Param(DEMO_DB_PATH, type="string"),
        "llm_conn_id": Param("edgeinfer_infrai_default", type="string"),
        "chat_model": Param("deepseek-chat", type="string"),
        "embedding_conn_id": Param("edgeinfer_infrai_default", type="string"),
        "embedding_model": Param("text-embedding-3-small", type="string"),
        "max_rows": Param(500, type="integer", minimum=1, description="Tickets enriched per run"),
        "output_root": Param(
            os.path.join(DEMO_ROOT, "ticket-enrichment"),
            type="string",
            description="Batch inputs and results, one directory per run",
        ),
    },
) as dag:

    @task(inlets=TICKETS_TABLE)
    def pending_tickets(params: dict[str, Any]) -> list[dict[str, Any]]:
        """The tickets still pending, oldest first; none: the rest of the run is skipped."""
        from airflow.providers.common.compat.sdk import AirflowSkipException  # airflow.exceptions on 3.1

        database = _database(params)
        database.run(ENRICHMENT_DDL)
        # Only the driver's placeholder is formatted in; every value travels as a parameter.
        rows = database.get_records(
            f"SELECT id, subject, body FROM tickets WHERE status = 'pending' ORDER BY id "  # noqa: S608
            f"LIMIT {database.placeholder}",
            parameters=[int(params["max_rows"])],
        )
        if not rows:
            raise AirflowSkipException("no pending tickets")
        return [{"id": int(r[0]), "subject": str(r[1]), "body": str(r[2])} for r in rows]

    @task.edgeinfer_batch(
        task_id="summarize",
        conn_id="{{ params.llm_conn_id }}",
        service="chat.completions",
        output_path=RUN_OUTPUT + "/summaries/",
        inlets=TICKETS_TABLE,
        max_failed_ratio=1.0,  # a ticket that fails stays pending; the others are written back
        poll_interval=2,
        deferrable=True,
    )
    def summary_inputs(tickets: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "custom_id": str(t["id"]),
                "input": {
                    "model": params["chat_model"],
                    "messages": [
                        {"role": "system", "content": SUMMARY_PROMPT},
                        {"role": "user", "content": f"{t['subject']}\n\n{t['body']}"},
                    ],
                    "max_tokens": 200,
                },
            }
            for t in tickets
        ]

    @task.edgeinfer_batch(
        task_id="embed",
        conn_id="{{ params.embedding_conn_id }}",
        service="embeddings",
        output_path=RUN_OUTPUT + "/embeddings/",
        inlets=TICKETS_TABLE,
        max_failed_ratio=1.0,
        poll_interval=2,
        deferrable=True,
    )
    def embedding_inputs(tickets: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"custom_id": str(t["id"]), "input": {"model": params["embedding_model"], "input": t["body"]}}
            for t in tickets
        ]

    @task(outlets=ENRICHMENT_TABLE + TICKETS_TABLE)
    def write_back(
        tickets: list[dict[str, Any]],
        summaries: dict[str, Any],
        embeddings: dict[str, Any],
        params: dict[str, Any],
        run_id: str,
    ) -> dict[str, int]:
        """Upsert each fully enriched ticket, then mark it done; the rest stay pending."""
        summarised = _succeeded(summaries["results_path"])
        embedded = _succeeded(embeddings["results_path"])
        rows = []
        for ticket in tickets:
            key = str(ticket["id"])
            if key not in summarised or key not in embedded:
                continue
            answer = summarised[key]["output"]["choices"][0]["message"]["content"]
            summary, category = _category(str(answer))
            vector = embedded[key]["output"]["data"][0]["embedding"]
            stated = [
                r["cost_usd"] for r in (summarised[key], embedded[key]) if r.get("cost_usd") is not None
            ]
            cost = sum(stated) if stated else None  # unknown is not $0
            rows.append((ticket["id"], summary, category, json.dumps(vector), cost, run_id))
        database = _database(params)
        if rows:
            database.insert_rows(
                "ticket_enrichment",
                rows,
                target_fields=["ticket_id", "summary", "category", "embedding", "cost_usd", "run_id"],
                replace=True,
                replace_index="ticket_id",
            )
            marks = ", ".join([database.placeholder] * len(rows))
            database.run(
                f"UPDATE tickets SET status = 'done' WHERE id IN ({marks})",  # noqa: S608 - placeholders only
                parameters=[row[0] for row in rows],
            )
        pending = len(tickets) - len(rows)
        if pending:
            log.warning("%d of %d tickets could not be enriched; they stay pending", pending, len(tickets))
        return {"enriched": len(rows), "pending": pending}

    tickets = pending_tickets()
    write_back(tickets, summary_inputs(tickets), embedding_inputs(tickets))
