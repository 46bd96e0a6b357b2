"""The idempotency key of a task instance's submission, shared by single inferences and native batches.

A retried try of the same task instance derives the same key for the same content, so a vendor that
deduplicates by key (the client's ``honours_idempotency``) answers the retry with the request the
previous try made instead of running, and billing, it again.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context


def idempotency_key(context: Context, content: str) -> str:
    """Same task instance (any try) and same content -> same key, so the vendor dedupes a retry."""
    ti = context["ti"]
    parts = [ti.dag_id, ti.task_id, ti.run_id, str(getattr(ti, "map_index", -1)), content]
    return "edgeinfer-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
