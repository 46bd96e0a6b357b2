"""Lines that arrive in any order, written out in input order, without holding them in memory.

A fan-out's results come back in the vendor's order (a listing is newest first, so a batch read
through it arrives last item first), a native batch's rounds each cover their own items, and
``results.jsonl`` must still list item 0 first. :class:`OrderedSpool` keeps each line in a local
temporary file as it comes and only its place in memory (an offset, a length and a flag: 17 bytes
an item, whatever the output's size); :meth:`OrderedSpool.lines` reads them back by index.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from typing import IO


class OrderedSpool:
    """A line per item index, put in any order, read back in index order (a later put replaces)."""

    def __init__(self) -> None:
        # Closed by close(): the spool lives as long as its writer.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="edgeinfer-results-")  # noqa: SIM115
        self._end = 0
        self._offset = array("q")  # -1: no line for this index
        self._length = array("q")
        self._flagged = bytearray()

    def __enter__(self) -> OrderedSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def put(self, index: int, line: bytes, *, flagged: bool = False) -> None:
        if index < 0:
            raise ValueError(f"an item index is never negative, got {index}")
        missing = index + 1 - len(self._offset)
        if missing > 0:
            self._offset.extend([-1] * missing)
            self._length.extend([0] * missing)
            self._flagged.extend(bytes(missing))
        self._file.seek(self._end)
        self._file.write(line)
        self._offset[index] = self._end
        self._length[index] = len(line)
        self._flagged[index] = flagged
        self._end += len(line)

    def lines(self, *, flagged_only: bool = False) -> Iterator[bytes]:
        """Every line put, by ascending index (only the flagged ones if asked)."""
        read = self._file
        for index, offset in enumerate(self._offset):
            if offset < 0 or (flagged_only and not self._flagged[index]):
                continue
            read.seek(offset)
            yield read.read(self._length[index])
