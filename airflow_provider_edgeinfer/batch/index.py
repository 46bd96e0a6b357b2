"""What a batch remembers per item while it streams: a few bytes each, never a Python object each.

A million-item batch is read as streams (its inputs, its journal, the vendor's listing, its results).
What one pass must remember about every item lives here, in fixed-width arrays:

- :class:`ItemStates`: each item's latest journal record (its kind and round): 3 bytes an item;
- :class:`IdIndex`: request id -> item index, an open-addressing table of 64-bit hashes of the ids:
  about 18 bytes an item (a set of the ids as strings would take over 100);
- :class:`Spool`: lines keyed by item index, in local bucket files, read back one index range at a
  time, so that what arrives in any order (a listing, newest first) is written in item order.

Two different ids of one batch share a 64-bit hash with a probability of about n^2 / 2^65 (3e-8 at a
million items): the tables treat them as one, which at worst mislabels one result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from typing import IO

_MASK = (1 << 64) - 1

# Kinds of journal records, as stored in ItemStates (0: no record).
NONE, INTENT, SUB, DONE_OK, DONE_FAILED, ERR, ERR_TRANSIENT = range(7)
FINAL = frozenset({SUB, DONE_OK, DONE_FAILED, ERR, ERR_TRANSIENT})


def id_hash(value: str) -> int:
    """A non-zero 64-bit hash of a request id (zero marks an empty slot)."""
    return (hash(value) & _MASK) or 1


class ItemStates:
    """The latest journal record of each of ``total`` items: its kind and its round.

    Precedence is the journal's: a later round wins; within a round a final record wins over an
    intent. Records of indices outside the batch are ignored (they cannot be this batch's).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.kinds = bytearray(total)
        self.rounds = zeros("H", total)

    def apply(self, index: int, kind: int, round: int) -> None:
        if not 0 <= index < self.total:
            return
        old_kind, old_round = self.kinds[index], self.rounds[index]
        if (
            old_kind == NONE
            or round > old_round
            or (round == old_round and (kind in FINAL or old_kind not in FINAL))
        ):
            self.kinds[index] = kind
            self.rounds[index] = min(round, 0xFFFF)

    def kind(self, index: int) -> int:
        return self.kinds[index]

    def round(self, index: int) -> int:
        return self.rounds[index]

    def count(self, kind: int, round: int | None = None) -> int:
        if round is None:
            return self.kinds.count(kind)
        return sum(1 for i, k in enumerate(self.kinds) if k == kind and self.rounds[i] == round)

    def indices(self, kinds: frozenset[int] | set[int], round: int | None = None) -> Iterator[int]:
        for index, kind in enumerate(self.kinds):
            if kind in kinds and (round is None or self.rounds[index] == round):
                yield index


def zeros(typecode: str, count: int) -> array[int]:
    """An array of ``count`` zeros, built in place: ``array(code, bytes(n))`` holds both copies at
    once, doubling the peak of a million-item table."""
    return array(typecode, [0]) * count


class IdIndex:
    """Request id -> item index for up to ``capacity`` ids, in two flat arrays (linear probing)."""

    def __init__(self, capacity: int) -> None:
        self._slots = max(8, capacity * 3 // 2 + 1)
        self._keys = zeros("Q", self._slots)
        self._values = zeros("i", self._slots)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _find(self, key: int) -> int:
        slot = key % self._slots
        keys = self._keys
        while keys[slot] not in (0, key):
            slot = (slot + 1) % self._slots
        return slot

    def add(self, request_id: str, index: int) -> None:
        key = id_hash(request_id)
        slot = self._find(key)
        if self._keys[slot] == 0:
            if self._size + 1 >= self._slots:
                raise OverflowError("IdIndex is full")
            self._size += 1
            self._keys[slot] = key
        self._values[slot] = index

    def get(self, request_id: str) -> int | None:
        slot = self._find(id_hash(request_id))
        return None if self._keys[slot] == 0 else self._values[slot]

    def __contains__(self, request_id: object) -> bool:
        return isinstance(request_id, str) and self.get(request_id) is not None


#: Items per bucket file of a Spool: its lines are read back into memory one bucket at a time.
SPOOL_BUCKET = 4096
#: At most this many bucket files are open at once (a bigger batch gets bigger buckets).
SPOOL_MAX_BUCKETS = 256


class Spool:
    """Lines keyed by item index, kept in local bucket files, read back in index order.

    ``put(index, tag, payload)`` appends; :meth:`buckets` closes the writers and yields, per bucket,
    ``{index: [(tag, payload), ...]}`` for one range of indices at a time. Payloads are one line of
    bytes (JSON without raw newlines). The files live in a private temporary directory, removed by
    :meth:`close`.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.size = max(SPOOL_BUCKET, -(-total // SPOOL_MAX_BUCKETS))
        self.directory = tempfile.mkdtemp(prefix="edgeinfer-spool-")
        self._files: dict[int, IO[bytes]] = {}

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, bucket: int) -> str:
        return os.path.join(self.directory, f"{bucket:05d}")

    def put(self, index: int, tag: str, payload: bytes) -> None:
        bucket = index // self.size
        handle = self._files.get(bucket)
        if handle is None:
            handle = self._files[bucket] = open(self._path(bucket), "ab")  # noqa: SIM115 - closed in close()
        handle.write(b"%d\t%s\t%s\n" % (index, tag.encode(), payload))

    def buckets(self) -> Iterator[tuple[range, dict[int, list[tuple[str, bytes]]]]]:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        for bucket in range(-(-self.total // self.size)):
            span = range(bucket * self.size, min(self.total, (bucket + 1) * self.size))
            entries: dict[int, list[tuple[str, bytes]]] = {}
            path = self._path(bucket)
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    for line in handle:
                        index, tag, payload = line.rstrip(b"\n").split(b"\t", 2)
                        entries.setdefault(int(index), []).append((tag.decode(), payload))
            yield span, entries

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
