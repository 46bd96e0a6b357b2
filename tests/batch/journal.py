"""Journal records for tests, written as the stored lines read (``{"k": "sub", "i": 0, ...}``)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_edgeinfer.batch.manifest import ItemRecord, decode


def record(raw: dict[str, Any]) -> tuple[int, ItemRecord]:
    """``(index, record)`` of one stored line, through the manifest's own codec."""
    decoded = decode(json.dumps(raw).encode())
    assert decoded is not None
    return decoded


def records(*raws: dict[str, Any]) -> list[tuple[int, ItemRecord]]:
    return [record(raw) for raw in raws]
