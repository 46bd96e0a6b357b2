"""A glob's matched files as a sorted list on disk, read as a stream.

A million file names are about 120 MB as Python strings (and several times that as path objects or
listing entries), so a batch over a glob keeps them in a file instead: one JSON string per line,
sorted as ``sorted()`` would sort the names, written once when the batch starts and copied into the
manifest (``sources.jsonl``), read again for each pass over the items. Sorting is done in runs of
:data:`RUN_NAMES` names merged from temporary files, so memory stays at one run whatever the count.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from typing import IO, Any, Protocol


class Names(Protocol):
    """What a batch needs of its files: how many, and each in order (a list or a FileList), each a URI
    or ``[uri, size, version]`` as listed."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


#: Names sorted in memory at once before a run is written out (a few MB of strings).
RUN_NAMES = 65_536


class FileList:
    """Names read in order from a binary file of JSON strings, one per line (``opener`` opens it)."""

    def __init__(self, opener: Callable[[], IO[bytes]], count: int, *, cleanup: str | None = None) -> None:
        self._opener = opener
        self._count = count
        #: A temporary file of ours holding the list, removed with this object.
        self._cleanup = cleanup

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        with self._opener() as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def digest_into(self, digest: Any) -> None:
        """Feed the list's bytes, as stored, to ``digest`` (a hashlib object)."""
        with self._opener() as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)

    def __del__(self) -> None:
        if self._cleanup is not None:
            with suppress(OSError):
                os.unlink(self._cleanup)

    @classmethod
    def read(cls, opener: Callable[[], IO[bytes]]) -> FileList:
        """A list written by :meth:`write_to` (its count read once, by lines)."""
        count = 0
        with opener() as handle:
            for line in handle:
                count += bool(line.strip())
        return cls(opener, count)

    def write_to(self, handle: IO[bytes]) -> None:
        for name in self:
            handle.write(json.dumps(name).encode() + b"\n")

    @classmethod
    def sorted_runs(cls, groups: Iterable[Iterable[Any]]) -> FileList:
        """The names of each group sorted, groups kept in order (a list of globs: each glob sorted)."""
        fd, path = tempfile.mkstemp(prefix="edgeinfer-files-", suffix=".jsonl")
        count = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for group in groups:
                    for name in _sorted_stream(group):
                        out.write(json.dumps(name).encode() + b"\n")
                        count += 1
        except BaseException:
            os.unlink(path)
            raise
        return cls(lambda: open(path, "rb"), count, cleanup=path)


def _sorted_stream(names: Iterable[Any]) -> Iterator[Any]:
    """``sorted(names)`` as a stream: runs of :data:`RUN_NAMES` sorted in memory, then merged."""
    runs: list[str] = []
    run: list[Any] = []
    try:
        for name in names:
            run.append(name)
            if len(run) >= RUN_NAMES:
                runs.append(_spill(sorted(run)))
                run = []
        run.sort()
        if not runs:
            yield from run
            return
        with ExitStack() as stack:
            spilled = [_lines(stack.enter_context(open(p, "rb"))) for p in runs]
            yield from heapq.merge(*spilled, iter(run))
    finally:
        for p in runs:
            with suppress(OSError):
                os.unlink(p)


def _spill(names: list[Any]) -> str:
    fd, path = tempfile.mkstemp(prefix="edgeinfer-run-", suffix=".jsonl")
    with os.fdopen(fd, "wb") as out:
        for name in names:
            out.write(json.dumps(name).encode() + b"\n")
    return path


def _lines(handle: IO[bytes]) -> Iterator[Any]:
    for line in handle:
        yield json.loads(line)
