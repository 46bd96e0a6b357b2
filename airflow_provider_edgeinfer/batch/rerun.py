"""Running a finished batch again (a back-fill re-run, a cleared day): pay only for what changed.

Beside the manifest's header, three small files remember what a finished batch already holds:

- ``items.jsonl``: each item's ``[custom_id, hash]`` (:func:`~.inputs.item_hash`), in input order;
- ``kept.jsonl``: the results rows a re-run with changed inputs keeps from the batch before it (items
  whose custom_id and hash are unchanged and which succeeded), re-indexed to their new position;
- ``summary.json``: what the task returned when the batch finished, returned again by a re-run of
  the very same batch, which sends and rewrites nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.batch.results import RESULTS, ResultsWriter

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.batch.manifest import Manifest

ITEMS = "items.jsonl"
KEPT = "kept.jsonl"
SUMMARY = "summary.json"


def write_items(manifest: Manifest, items: Iterable[BatchItem]) -> None:
    from airflow_provider_edgeinfer.batch.inputs import item_hash

    manifest.directory.mkdir(parents=True, exist_ok=True)
    with (manifest.directory / ITEMS).open("wb") as handle:
        for item in items:
            handle.write(json.dumps([item.custom_id, item_hash(item)]).encode() + b"\n")


def keep_succeeded(manifest: Manifest, items: Iterable[BatchItem]) -> list[int]:
    """Write ``kept.jsonl`` for the finished batch in the manifest; the indices of ``items`` kept.

    Call before the manifest is reset: it reads the finished batch's item hashes and results.
    """
    from airflow_provider_edgeinfer.batch.inputs import item_hash

    earlier = dict(_lines(manifest.directory / ITEMS, 2))
    # (index, ref) only: a million items' inputs would not fit where their ids do.
    unchanged = {
        item.custom_id: (item.index, item.ref)
        for item in items
        if earlier.get(item.custom_id) == item_hash(item)
    }
    kept: list[int] = []
    manifest.directory.mkdir(parents=True, exist_ok=True)
    with (manifest.directory / KEPT).open("wb") as handle:
        for row in _rows(manifest.output_dir / RESULTS):
            place = unchanged.pop(str(row.get("custom_id")), None)
            if place is None or row.get("state") != "succeeded":
                continue
            row = {**row, "index": place[0], "input_ref": place[1]}
            handle.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
            kept.append(place[0])
    return sorted(kept)


def clear_kept(manifest: Manifest) -> None:
    (manifest.directory / KEPT).unlink(missing_ok=True)


def read_kept(manifest: Manifest) -> dict[int, dict[str, Any]]:
    return {int(row["index"]): row for row in _rows(manifest.directory / KEPT)}


def write_summary(manifest: Manifest, summary: dict[str, Any]) -> None:
    manifest.directory.mkdir(parents=True, exist_ok=True)
    with (manifest.directory / SUMMARY).open("wb") as handle:
        handle.write(json.dumps(summary, default=str).encode())


def read_summary(manifest: Manifest) -> dict[str, Any] | None:
    """The finished batch's summary; None when it was written by a release that kept none."""
    path = manifest.directory / SUMMARY
    if not path.exists():
        return None
    value = json.loads(path.read_bytes())
    return value if isinstance(value, dict) else None


def count_results(manifest: Manifest) -> dict[str, Any]:
    """The counts of a summary, read back from the results file."""
    from airflow_provider_edgeinfer.batch.results import FAILURES

    rows = list(_rows(manifest.output_dir / RESULTS))
    succeeded = sum(1 for row in rows if row.get("state") == "succeeded")
    costs = [row["cost_usd"] for row in rows if isinstance(row.get("cost_usd"), int | float)]
    return {
        "total": len(rows),
        "succeeded": succeeded,
        "failed": len(rows) - succeeded,
        "cost_usd": round(sum(costs), 8) if costs else None,
        "items_without_cost": len(rows) - len(costs),
        "results_path": str(manifest.output_dir / RESULTS),
        "failures_path": str(manifest.output_dir / FAILURES),
    }


class KeepingWriter(ResultsWriter):
    """A results writer that also writes the rows kept from the batch before, each at its item's place.

    Rows the round's readers produce for kept items ("never submitted": they were not sent) are
    dropped. Kept items are read from the inputs alongside the round's rows, both in item order.
    """

    def __init__(self, *args: Any, items: Items, kept: dict[int, dict[str, Any]]) -> None:
        super().__init__(*args)
        self._kept = kept
        self._kept_items: Iterator[BatchItem] = iter(items.select(kept.__contains__) if kept else ())
        self._next_kept = next(self._kept_items, None)

    def __exit__(self, *exc: object) -> None:
        try:
            self._write_kept(until=None)
        finally:
            super().__exit__(*exc)

    def row(self, item: BatchItem, **fields: Any) -> None:
        self._write_kept(until=item.index)
        if item.index not in self._kept:
            super().row(item, **fields)

    def _write_kept(self, until: int | None) -> None:
        """The kept rows of items up to ``until`` (every one left when None)."""
        while self._next_kept is not None and (until is None or self._next_kept.index <= until):
            item, self._next_kept = self._next_kept, next(self._kept_items, None)
            row = self._kept[item.index]
            super().row(
                item,
                succeeded=True,
                request_id=row.get("request_id"),
                output=row.get("output"),
                cost_usd=row.get("cost_usd"),
            )


def _json_lines(path: Any) -> Iterator[Any]:
    """Decoded lines of a JSONL file; a missing file or an unreadable line gives nothing (that item
    is simply sent again)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _rows(path: Any) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (see :func:`_json_lines`)."""
    return (value for value in _json_lines(path) if isinstance(value, dict))


def _lines(path: Any, width: int) -> Iterator[tuple[str, str]]:
    for value in _json_lines(path):
        if isinstance(value, list) and len(value) == width:
            yield str(value[0]), str(value[1])
