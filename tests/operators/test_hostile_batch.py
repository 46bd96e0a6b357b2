"""A batch against a vendor that answers something hostile or broken: the task ends, promptly, with an
error that names the batch, and never writes an answer to the wrong item or the same item twice.

The hostile answers come from the emulator: a scripted 429 with an absurd ``Retry-After`` for the
fan-out, and results pages rewritten on their way out (``monkeypatch`` on the emulator's own page
and results functions) for infrai's native batches. Each run is bounded by a thread join, so a
regression shows as a failed assertion, not a hung suite.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator import infrai_batches as emulated_infrai
from airflow_provider_edgeinfer.exceptions import JobTimeoutError, UnexpectedResponseError
from airflow_provider_edgeinfer.operators.batch import BatchOperator

#: Longest a run may take here before the test calls it hung.
BOUND_SECONDS = 30.0


def context() -> Any:
    """The part of an Airflow context the operators read here."""
    return {"ti": FakeTI()}


class FakeTI:
    dag_id, task_id, run_id, map_index = "hostile_dag", "batch", "manual__hostile", -1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


def run_bounded(operator: BatchOperator) -> tuple[BaseException | None, float]:
    """(what execute raised, seconds it took); fails the test if it is still running after the bound."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            operator.execute(context())
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND_SECONDS)
    assert not thread.is_alive(), f"the batch task was still running after {BOUND_SECONDS:.0f} s"
    return outcome[0], time.monotonic() - started


# -- 1. a 429 asking for a pause of 31 years -----------------------------------------------------


def test_a_huge_retry_after_ends_at_the_batch_timeout(emulated: Any, tmp_path: Path) -> None:
    items = 3
    emulated.state.scripted["theta"].extend(
        {"kind": "429", "method": "POST", "retry_after": 999999999} for _ in range(items)
    )
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=[{"audio_filename": f"https://example.invalid/hostile-{n}.wav"} for n in range(items)],
        output_path=str(tmp_path),
        max_concurrency=2,
        timeout=2,
        deferrable=False,
    )
    error, took = run_bounded(operator)
    assert isinstance(error, JobTimeoutError), error
    assert took < 15, f"the fan-out honoured Retry-After past its timeout ({took:.1f} s)"
    assert emulated.state.faults_injected["theta.429"] >= 1
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(row["index"] for row in rows) == list(range(items))
    assert all(row["state"] == "failed" for row in rows)


# -- 2. infrai native results that cannot be trusted ----------------------------------------------


def native_batch(tmp_path: Path, items: int = 3) -> BatchOperator:
    return BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=[
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"item {n}"}]}
            for n in range(items)
        ],
        output_path=str(tmp_path),
        deferrable=False,
    )


def rewrite_results(monkeypatch: pytest.MonkeyPatch, change: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Every results page the emulator serves is built from ``change(rows)``."""
    original = emulated_infrai.Batches.results

    def hostile(self: Any, batch: Any) -> list[dict[str, Any]]:
        return list(change(original(self, batch)))

    monkeypatch.setattr(emulated_infrai.Batches, "results", hostile)


def results_rows(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_honest_native_batch_still_succeeds(emulated: Any, tmp_path: Path) -> None:
    error, _ = run_bounded(native_batch(tmp_path))
    assert error is None
    assert sorted(row["index"] for row in results_rows(tmp_path)) == [0, 1, 2]


def test_a_results_cursor_that_comes_back_is_refused(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = emulated_infrai._page

    def endless(request: Any, items: list[Any]) -> tuple[list[Any], str | None]:
        chunk, _ = original(request, items)
        first = request.query_params.get("cursor") is None
        return (chunk if first else []), "c0"  # "there is more", for ever, at the same place

    monkeypatch.setattr(emulated_infrai, "_page", endless)
    error, _ = run_bounded(native_batch(tmp_path))
    assert isinstance(error, UnexpectedResponseError), error
    assert "cursor 'c0' came back" in str(error)
    assert error.request_id is not None and error.request_id in str(error)


def test_endless_empty_results_pages_are_bounded_by_the_batch_size(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = emulated_infrai._page
    served: list[int] = []

    def endless(request: Any, items: list[Any]) -> tuple[list[Any], str | None]:
        chunk, _ = original(request, items)
        served.append(1)
        # A fresh cursor each time, so only the page count can stop the reader.
        return (chunk if len(served) == 1 else []), f"c{len(served)}"

    monkeypatch.setattr(emulated_infrai, "_page", endless)
    error, _ = run_bounded(native_batch(tmp_path))
    assert isinstance(error, UnexpectedResponseError), error
    assert "kept sending pages" in str(error)
    assert len(served) <= 3 + 1 + 1  # a 3-item batch fills at most 4 pages; the 5th is refused


@pytest.mark.parametrize("bad_index", [3, 7, -1], ids=["one-past-the-end", "far-out", "negative"])
def test_a_result_index_outside_the_batch_is_refused(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_index: int
) -> None:
    def misplaced(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*rows[:-1], {**rows[-1], "index": bad_index}]

    rewrite_results(monkeypatch, misplaced)
    error, _ = run_bounded(native_batch(tmp_path))
    assert isinstance(error, UnexpectedResponseError), error
    assert f"index {bad_index}, outside 0..2" in str(error)
    # Nothing was written to the wrong item (a negative index would have hit the last one).
    assert [row["index"] for row in results_rows(tmp_path)] == [0, 1]


def test_an_item_written_twice_and_another_missing_is_refused(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rewrite_results(monkeypatch, lambda rows: [rows[0], rows[1], rows[1]])
    error, _ = run_bounded(native_batch(tmp_path))
    assert isinstance(error, UnexpectedResponseError), error
    assert "index 1 was sent twice" in str(error)
    assert [row["index"] for row in results_rows(tmp_path)] == [0, 1]


def test_a_finished_batch_with_a_missing_result_fails_the_task(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rewrite_results(monkeypatch, lambda rows: rows[:2])
    error, _ = run_bounded(native_batch(tmp_path))
    assert isinstance(error, UnexpectedResponseError), error
    assert "1 of its items have no result (index 2)" in str(error)
    rows = results_rows(tmp_path)
    # Every item still has exactly one row: the missing one as a failure naming the batch.
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert rows[2]["state"] == "failed" and "returned no result" in rows[2]["error"]["message"]
