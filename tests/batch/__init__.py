"""Helpers of the batch tests."""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeinfer.batch.inputs import BatchItem, open_items


def load_items(inputs: Any, **options: Any) -> list[BatchItem]:
    """Every item of ``inputs``, checked as a batch checks them, as a list (small inputs only)."""
    items = open_items(inputs, **options)
    items.check(("", "", None))
    return list(items)
