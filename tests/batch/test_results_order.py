"""results.jsonl and failures.jsonl list items in input order, whatever order the answers came in.

The readers spool answers by item index; the writer streams the rows they hand it in item order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.inputs import BatchItem
from airflow_provider_edgeinfer.batch.results import ResultsWriter
from airflow_provider_edgeinfer.storage import as_storage_path
from tests.batch.batch_worker import FakeTI, operator


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_stream_to_both_files_with_the_summary(tmp_path: Path) -> None:
    with ResultsWriter(as_storage_path(str(tmp_path)), 300) as writer:
        for index in range(300):
            item = BatchItem(index, f"id-{index}", {}, f"inputs[{index}]")
            ok = index % 7 != 0
            writer.row(item, succeeded=ok, request_id=f"r{index}", output={"n": index} if ok else None)
    rows = _rows(tmp_path / "results.jsonl")
    assert [r["index"] for r in rows] == list(range(300))
    assert [r["custom_id"] for r in rows[:2]] == ["id-0", "id-1"]
    failed = _rows(tmp_path / "failures.jsonl")
    assert [r["index"] for r in failed] == [i for i in range(300) if i % 7 == 0]
    assert (writer.summary.total, writer.summary.failed) == (300, 43)
    assert writer.summary.failure_examples == [f"id-{i}: the request failed" for i in (0, 7, 14)]


def test_a_later_row_of_an_item_replaces_the_earlier_one(tmp_path: Path) -> None:
    with ResultsWriter(as_storage_path(str(tmp_path)), 2) as writer:
        writer.row(BatchItem(0, "0", {}, "x"), succeeded=True, request_id="r0")
        item = BatchItem(1, "1", {}, "x")
        writer.row(item, succeeded=False, request_id="first")
        writer.row(item, succeeded=True, request_id="second")
    assert [r["request_id"] for r in _rows(tmp_path / "results.jsonl")] == ["r0", "second"]
    assert _rows(tmp_path / "failures.jsonl") == []
    assert (writer.summary.total, writer.summary.succeeded, writer.summary.failed) == (2, 2, 0)


def test_a_row_out_of_item_order_is_refused(tmp_path: Path) -> None:
    # The readers put answers back in item order (their spool): a row behind is a reader's bug.
    out = as_storage_path(str(tmp_path))
    with pytest.raises(ValueError, match="item 0"), ResultsWriter(out, 3) as writer:
        writer.row(BatchItem(2, "2", {}, "x"), succeeded=True, request_id=None)
        writer.row(BatchItem(0, "0", {}, "x"), succeeded=True, request_id=None)
    assert [r["index"] for r in _rows(tmp_path / "results.jsonl")] == [2]


def test_rows_read_before_an_error_are_still_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), ResultsWriter(as_storage_path(str(tmp_path)), 3) as writer:
        for index in (0, 2):
            writer.row(BatchItem(index, str(index), {}, "x"), succeeded=True, request_id=None)
        raise RuntimeError("the vendor's results broke off")
    assert [r["index"] for r in _rows(tmp_path / "results.jsonl")] == [0, 2]


def test_a_fanout_read_through_a_listing_writes_results_in_input_order(
    edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_edgeinfer.emulator.state import Timing

    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    # Still running when submitted, so the results are read through the listing, newest first.
    edgeinfer_emulator.state.timing["theta"] = Timing(0.0, 0.5)
    result = operator(str(tmp_path), 40).execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert result["succeeded"] == 40
    assert edgeinfer_emulator.state.snapshot()["requests"].get("theta.list_requests", 0) > 0
    rows = _rows(tmp_path / "results.jsonl")
    assert [r["index"] for r in rows] == list(range(40))
    assert [r["custom_id"] for r in rows] == [str(i) for i in range(40)]
