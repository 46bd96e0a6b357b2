"""The per-item tables a streaming batch keeps: right answers, and a few bytes per item."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.index import (
    DONE_OK,
    ERR_TRANSIENT,
    INTENT,
    NONE,
    SUB,
    IdIndex,
    ItemStates,
    Spool,
)


def test_item_states_follow_the_journal_precedence() -> None:
    states = ItemStates(4)
    states.apply(0, INTENT, 0)
    states.apply(0, SUB, 0)
    states.apply(0, INTENT, 0)  # replayed out of order: the final record stays
    states.apply(1, SUB, 0)
    states.apply(1, INTENT, 1)  # a later round wins, even over a final record
    states.apply(2, ERR_TRANSIENT, 1)
    states.apply(2, DONE_OK, 0)  # an earlier round never wins
    states.apply(7, SUB, 0)  # outside the batch: ignored
    assert [states.kind(i) for i in range(4)] == [SUB, INTENT, ERR_TRANSIENT, NONE]
    assert [states.round(i) for i in range(4)] == [0, 1, 1, 0]
    assert states.count(SUB) == 1
    assert list(states.indices({INTENT, ERR_TRANSIENT}, round=1)) == [1, 2]


def test_id_index_maps_ids_to_items() -> None:
    index = IdIndex(1000)
    for i in range(1000):
        index.add(f"infr_rqst_{i:026d}", i)
    index.add("infr_rqst_" + "0" * 26, 5)  # a second add of one id updates it
    assert len(index) == 1000
    assert index.get("infr_rqst_" + "0" * 26) == 5
    assert index.get(f"infr_rqst_{999:026d}") == 999
    assert index.get("infr_rqst_someone_else") is None
    assert f"infr_rqst_{3:026d}" in index
    assert "infr_rqst_someone_else" not in index
    assert 3 not in index


def test_spool_gives_lines_back_in_index_order_one_bucket_at_a_time() -> None:
    with Spool(10_000) as spool:
        for i in reversed(range(0, 10_000, 3)):
            spool.put(i, "job", b'{"i":%d}' % i)
        spool.put(5, "sub", b"x\ty")  # a tab inside a payload survives
        seen: list[int] = []
        spans = []
        for span, entries in spool.buckets():
            spans.append(span)
            assert all(i in span for i in entries)
            seen.extend(sorted(entries))
        assert seen == sorted(set(range(0, 10_000, 3)) | {5})
        assert spans[0].start == 0 and spans[-1].stop == 10_000
        assert len(spans) == 3  # 4096 items a bucket
        directory = spool.directory
    assert not os.path.exists(directory)


def _bytes_per_item(build: Callable[[int], Any]) -> float:
    """Memory a table holds per item, from its growth between 2,000 and 20,000 items."""
    sizes = []
    for n in (2_000, 20_000):
        tracemalloc.start()
        table = build(n)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del table
        sizes.append(size)
    return (sizes[1] - sizes[0]) / 18_000


def _filled_index(n: int) -> IdIndex:
    index = IdIndex(n)
    for i in range(n):
        index.add(f"infr_rqst_{i:026d}", i)
    return index


def _filled_states(n: int) -> ItemStates:
    states = ItemStates(n)
    for i in range(n):
        states.apply(i, SUB, 0)
    return states


@pytest.mark.parametrize(
    ("build", "most"),
    [(_filled_index, 20), (_filled_states, 4)],
    ids=["IdIndex", "ItemStates"],
)
def test_tables_hold_a_few_bytes_per_item(build: Callable[[int], Any], most: float) -> None:
    # A set of the ids, or a dict of records, would hold 100 bytes or more per item.
    assert _bytes_per_item(build) <= most
