"""A cost the vendor did not state is unknown everywhere: in log lines, results.jsonl and batch totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_edgeinfer.batch.inputs import BatchItem
from airflow_provider_edgeinfer.batch.results import ResultsWriter
from airflow_provider_edgeinfer.progress import format_cost, format_total, usd
from airflow_provider_edgeinfer.storage import as_storage_path


def test_money_in_log_lines() -> None:
    assert usd(0.000038) == "$0.000038"
    assert usd(12.5) == "$12.500000"
    assert format_cost(0.000038) == "cost $0.000038"
    assert format_cost(0.0) == "cost $0.000000"  # a stated zero stays a zero
    assert format_cost(None) == "cost unknown"
    assert format_total(0.25, 0) == "cost $0.250000"
    assert format_total(0.25, 2) == "cost $0.250000 (2 items without a stated cost)"
    assert format_total(None, 1) == "cost unknown (1 item without a stated cost)"


def _write(tmp_path: Path, costs: list[float | None]) -> tuple[ResultsWriter, list[dict[str, object]]]:
    with ResultsWriter(as_storage_path(str(tmp_path)), len(costs)) as writer:
        for index, cost in enumerate(costs):
            item = BatchItem(index, str(index), {}, f"inputs[{index}]")
            writer.row(item, succeeded=True, request_id=f"r{index}", output={"ok": index}, cost_usd=cost)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    return writer, rows


def test_batch_total_sums_only_stated_costs_and_counts_the_rest(tmp_path: Path) -> None:
    writer, rows = _write(tmp_path, [0.25, None, 0.5, None])
    assert [r["cost_usd"] for r in rows] == [0.25, None, 0.5, None]
    assert writer.summary.cost_usd == pytest.approx(0.75)
    assert writer.summary.items_without_cost == 2


def test_batch_total_is_unknown_when_no_item_stated_a_cost(tmp_path: Path) -> None:
    writer, _ = _write(tmp_path, [None, None])
    assert (tmp_path / "results.jsonl").read_text().count('"cost_usd":null') == 2
    assert (writer.summary.cost_usd, writer.summary.items_without_cost) == (None, 2)


def test_stated_zero_costs_are_a_known_total(tmp_path: Path) -> None:
    writer, _ = _write(tmp_path, [0.0, 0.0])
    assert (writer.summary.cost_usd, writer.summary.items_without_cost) == (0.0, 0)
