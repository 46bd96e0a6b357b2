"""The batch manifest under ``output_path/_edgeinfer/``: what was submitted, so a retry never pays twice.

- ``batch.json``: the header (fingerprint, vendor, mode, rounds; a native round's idempotency key and
  batch id). Small, rewritten whole.
- ``journal/*.jsonl``: append-only records of a fan-out. Writes are group-committed (everything
  pending goes in one write), which makes one write per burst instead of one per item. On local disk
  a try appends its writes to one segment of its own; object stores cannot append, so there each
  write is a new small segment. Before an item is sent its ``intent`` record is
  durable, so a crash mid-send leaves evidence that the request may exist; its ``sub`` record (request
  id) follows as soon as the vendor answers. Segments are compacted into one once a fan-out ends.

Record precedence for one item: a later round wins; within a round a final record (``sub``,
``done``, ``err``) wins over ``intent``. So replaying segments in any order gives the same state.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from pydantic import BaseModel, Field

from airflow_provider_edgeinfer.batch.index import (
    DONE_FAILED,
    DONE_OK,
    ERR,
    ERR_TRANSIENT,
    INTENT,
    SUB,
    IdIndex,
    ItemStates,
)
from airflow_provider_edgeinfer.clients.core import JobState
from airflow_provider_edgeinfer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.batch.filelist import Names

MANIFEST_DIR = "_edgeinfer"
HEADER = "batch.json"
SOURCES = "sources.jsonl"
OLD_SOURCES = "sources.json"
JOURNAL = "journal"
VERSION = 1

Mode = Literal["native", "fanout", "sync"]


class NativePart(BaseModel):
    """One native batch of a round too big for one: positions ``start .. start+count`` of the round,
    its idempotency key (written before its submit) and its batch id (written after it)."""

    start: int
    count: int
    key: str | None = None
    batch_id: str | None = None


class Round(BaseModel):
    number: int
    started_at: float
    #: Indices this round (re)submits; None means every item (round 0).
    indices: list[int] | None = None
    #: Native batches: the idempotency key, written before the submit, and the batch id, written after it.
    key: str | None = None
    batch_id: str | None = None
    #: Fan-out figures, summed over the tries that sent this round.
    submitted: int = 0
    submit_seconds: float = 0.0
    #: A native round split into several batches (``key`` and ``batch_id`` then stay None).
    parts: list[NativePart] = Field(default_factory=list)

    @property
    def batch_ids(self) -> list[str]:
        """The native batches of this round submitted so far."""
        if self.parts:
            return [part.batch_id for part in self.parts if part.batch_id]
        return [self.batch_id] if self.batch_id else []

    def native_batches(self, total: int) -> list[tuple[str, Sequence[int]]]:
        """(batch id, the item index of each of its positions) of each submitted native batch."""
        chosen: Sequence[int] = self.indices if self.indices is not None else range(total)
        if not self.parts:
            return [(self.batch_id, chosen)] if self.batch_id else []
        return [(p.batch_id, chosen[p.start : p.start + p.count]) for p in self.parts if p.batch_id]


class Header(BaseModel):
    version: int = VERSION
    fingerprint: str
    vendor: str
    service: str
    prediction: str | None = None
    mode: Mode
    total: int
    created_at: float
    rounds: list[Round] = Field(default_factory=list)
    #: Set when results were written: "succeeded", or "failed" (too many failed items, timeout,
    #: cancellation). A new try of a failed batch resubmits only its failed items.
    outcome: Literal["succeeded", "failed"] | None = None
    #: A digest of a JSONL inputs file's bytes (and of vendor, service, prediction) when the batch
    #: started: a retry reading the same bytes skips checking every item again (see Items.raw_digest).
    inputs_digest: str | None = None

    @property
    def current(self) -> Round:
        return self.rounds[-1]


#: What an item's journal record says: about to be sent, submitted (request id), finished in the
#: call (a synchronous vendor's whole job), or refused / failed before any request existed.
Kind = Literal["intent", "sub", "done", "err"]
KINDS: frozenset[str] = frozenset(("intent", "sub", "done", "err"))


@dataclass(slots=True)
class ItemRecord:
    """One journal record of one item (and, read back, the latest one)."""

    kind: Kind
    round: int
    request_id: str | None = None
    at: float | None = None
    job: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    transient: bool = False
    #: Hash of the input actually sent (after uploads), to find a lost submission in a listing.
    input_hash: str | None = None

    @property
    def final(self) -> bool:
        return self.kind != "intent"


# The one codec of journal lines. Keys are short because a fan-out writes one line per item per
# event; they are the stored layout (VERSION), so a change here needs a new version.
def encode(index: int, record: ItemRecord) -> bytes:
    """One journal line (with its newline) for ``record`` of item ``index``."""
    out: dict[str, Any] = {"k": record.kind, "i": index, "r": record.round}
    if record.request_id is not None:
        out["id"] = record.request_id
    if record.at is not None:
        out["at"] = record.at
    if record.job is not None:
        out["job"] = record.job
    if record.error is not None:
        out["e"] = record.error
    if record.transient:
        out["t"] = True
    if record.input_hash is not None:
        out["h"] = record.input_hash
    return json.dumps(out, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> tuple[int, ItemRecord] | None:
    """(index, record) of one journal line; None for a torn line.

    A torn final line (a crash mid-write) carries nothing durable. A whole line that is not a record
    is refused: skipping it could forget a submission and send the item again.
    """
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    try:
        kind = raw["k"]
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        return int(raw["i"]), ItemRecord(
            kind=kind,
            round=int(raw.get("r", 0)),
            request_id=raw.get("id"),
            at=raw.get("at"),
            job=raw.get("job"),
            error=raw.get("e"),
            transient=bool(raw.get("t", False)),
            input_hash=raw.get("h"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"a batch journal line is not a record ({exc.__class__.__name__}: {str(exc)[:80]})",
            hint="Delete the output directory's _edgeinfer folder only if no batch of it is running.",
        ) from None


class _JobHead(msgspec.Struct):
    state: Any = None


class _Head(msgspec.Struct):
    """What a pass over a whole journal needs of a line (its item, kind, round, request id); the rest
    of the line is skipped by the decoder, not built, which makes such a pass several times faster
    than :func:`decode` (a resumed million-item batch reads its journal more than once)."""

    k: str
    i: int
    r: int = 0
    id: str | None = None
    t: bool = False
    job: _JobHead | None = None


_HEAD_DECODER = msgspec.json.Decoder(_Head)


def _head(line: bytes) -> tuple[int, int, int, str | None] | None:
    """(index, :func:`state_code`, round, request id) of one journal line, exactly as :func:`decode`
    reads it; None for a torn line. A line the fast decoder does not take as written by
    :func:`encode` goes through :func:`decode`, which decides (and refuses what is not a record)."""
    try:
        head = _HEAD_DECODER.decode(line)
    except msgspec.MsgspecError:
        head = None
    if head is None or head.k not in KINDS:
        decoded = decode(line)
        if decoded is None:
            return None
        index, record = decoded
        return index, state_code(record), record.round, record.request_id
    job_state = None if head.job is None else head.job.state
    return head.i, _code(head.k, job_state, head.t), head.r, head.id


def _wins(new: ItemRecord, old: ItemRecord | None) -> bool:
    if old is None:
        return True
    if new.round != old.round:
        return new.round > old.round
    return new.final or not old.final


class Manifest:
    """The manifest of the batch whose results go to ``output_dir``."""

    def __init__(self, output_dir: ObjectStoragePath) -> None:
        self.output_dir = output_dir
        self.directory = output_dir / MANIFEST_DIR
        self.journal_dir = self.directory / JOURNAL
        self._journal_ready = False

    def __repr__(self) -> str:
        return f"Manifest({self.directory})"

    # -- header --------------------------------------------------------------------------------

    def read_header(self) -> Header | None:
        """The header, or None for a new batch; never None while a journal shows submissions.

        A missing header beside journal segments would otherwise read as "no batch here", and the
        operator would reset the journal and send every item again.
        """
        path = self.directory / HEADER
        if not path.exists():
            if self._segments():
                raise ConfigurationError(
                    f"the batch manifest {self.directory} has a journal of submissions but no {HEADER}",
                    hint="Requests of this batch may be running (and billed). Delete the output directory's "
                    "_edgeinfer folder only if no batch of it is running.",
                )
            return None
        try:
            header = Header.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise ConfigurationError(
                f"the batch manifest {path} is unreadable ({exc.__class__.__name__})",
                hint="Delete the output directory's _edgeinfer folder only if no batch of it is running.",
            ) from None
        if header.version != VERSION:
            # Another layout's records may mean something else: misread, they could send items again.
            raise ConfigurationError(
                f"the batch manifest {path} has layout version {header.version}; this release reads "
                f"version {VERSION}",
                hint="Finish or retry the batch with the release that started it.",
            )
        return header

    def has_header(self) -> bool:
        return bool((self.directory / HEADER).exists())

    def write_header(self, header: Header) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / HEADER).open("wb") as handle:
            handle.write(header.model_dump_json(indent=1).encode())

    def write_sources(self, sources: Names) -> None:
        """The files a glob matched when the batch started: the batch's items, whatever arrives later
        (one JSON string a line, streamed: a million names never sit in memory)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / SOURCES).open("wb") as handle:
            for name in sources:
                handle.write(json.dumps(name).encode() + b"\n")

    def read_sources(self) -> Names | None:
        from airflow_provider_edgeinfer.batch.filelist import FileList

        path = self.directory / SOURCES
        if path.exists():
            return FileList.read(lambda: path.open("rb"))
        older = self.directory / OLD_SOURCES
        if not older.exists():
            return None
        # Written by earlier releases: one JSON list.
        value = json.loads(older.read_bytes())
        return [str(v) for v in value] if isinstance(value, list) else None

    def has_submissions(self, header: Header) -> bool:
        """Whether anything of this batch may have reached the vendor (else it can be replaced)."""
        if any(r.key or r.batch_id for r in header.rounds):
            return True
        return bool(self._segments())

    def reset(self) -> None:
        """Forget a finished batch (a deliberate re-run starts a new one)."""
        if self.directory.exists():
            for path in self._segments():
                path.unlink()
            for name in (HEADER, SOURCES, OLD_SOURCES):
                (self.directory / name).unlink(missing_ok=True)

    # -- journal -------------------------------------------------------------------------------

    def _segments(self) -> list[ObjectStoragePath]:
        if not self.journal_dir.exists():
            return []
        return sorted(p for p in self.journal_dir.iterdir() if p.name.endswith(".jsonl"))

    def write_segment(
        self, records: Iterable[tuple[int, ItemRecord]], *, prefix: str = "", name: str | None = None
    ) -> None:
        """One new segment holding ``(index, record)`` pairs (nothing is written for none).

        With ``name`` (a writer's own segment, :func:`segment_name`) on local disk, the pairs are
        appended to that segment instead: one file for a whole try rather than one per group commit,
        which a retry of a million-item batch would otherwise list and open by the hundred thousand.
        One ``write`` to a file opened for appending is as durable as a new file (both reach the
        operating system before the call returns). Object stores cannot append: there every write
        is a new segment.
        """
        data = b"".join(encode(index, record) for index, record in records)
        if not data:
            return
        if not self._journal_ready:  # once: a fan-out writes thousands of segments
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            self._journal_ready = True
        local = self._local_journal()
        if name is not None and local is not None:
            with open(os.path.join(local, name), "ab", buffering=0) as handle:
                handle.write(data)
            return
        with (self.journal_dir / segment_name(prefix)).open("wb") as handle:
            handle.write(data)

    def _local_journal(self) -> str | None:
        """The journal's directory when it is on local disk (where files can be appended to)."""
        if (self.journal_dir.protocol or "file") not in ("file", "local"):
            return None
        return str(self.journal_dir.path)

    def _lines(self) -> Iterator[bytes]:
        for path in self._segments():
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield line

    def records(self) -> Iterator[tuple[int, ItemRecord]]:
        """Every journal record, segment by segment (read as a stream; any order of items)."""
        for line in self._lines():
            if (decoded := decode(line)) is not None:
                yield decoded

    def items(self) -> dict[int, ItemRecord]:
        """The latest record of every item the journal mentions."""
        latest: dict[int, ItemRecord] = {}
        for index, record in self.records():
            if _wins(record, latest.get(index)):
                latest[index] = record
        return latest

    def states(self, total: int) -> ItemStates:
        """The latest record's kind and round of each of ``total`` items: one pass, 3 bytes an item."""
        states = ItemStates(total)
        for line in self._lines():
            if (head := _head(line)) is not None:
                states.apply(head[0], head[1], head[2])
        return states

    def latest_of(self, states: ItemStates, indices: set[int]) -> tuple[dict[int, ItemRecord], IdIndex]:
        """The latest records of ``indices`` (read whole), and every request id the journal holds,
        to its item: one pass, in which only those items' lines are decoded whole (``states`` from
        :meth:`states`)."""
        latest: dict[int, ItemRecord] = {}
        known = IdIndex(states.total)
        for line in self._lines():
            head = _head(line)
            if head is None:
                continue
            index, code, round_, request_id = head
            if request_id:
                known.add(request_id, index)
            if (
                index in indices
                and index not in latest
                and code == states.kind(index)
                and round_ == states.round(index)
            ):
                decoded = decode(line)
                if decoded is not None:
                    latest[index] = decoded[1]
        return latest, known

    def winners(self, states: ItemStates) -> Iterator[tuple[int, ItemRecord]]:
        """The latest record of every item, once each, in journal order (``states`` from :meth:`states`)."""
        return ((index, record) for index, record, latest in self.marked(states) if latest)

    def marked(self, states: ItemStates) -> Iterator[tuple[int, ItemRecord, bool]]:
        """Every record, and whether it is its item's latest (the first of those only): one pass for
        a reader that needs both (``states`` from :meth:`states`)."""
        emitted = bytearray(states.total)
        for index, record in self.records():
            latest = (
                0 <= index < states.total
                and not emitted[index]
                and state_code(record) == states.kind(index)
                and record.round == states.round(index)
            )
            if latest:
                emitted[index] = 1
            yield index, record, latest

    def compact(self, total: int | None = None) -> None:
        """Fold every segment into one, so readers open one object instead of thousands.

        Streamed: the latest record of each item is copied into the new segment as the old ones are
        read, so a million-item journal never sits in memory. The old segments go only once the new
        one is stored (a crash in between leaves records twice, which replay the same).
        """
        segments = self._segments()
        if len(segments) <= 1:
            return
        if total is None:
            total = 1 + max((index for index, _ in self.records()), default=-1)
        self.write_stream(self.winners(self.states(total)), prefix="0-compact-")
        for path in segments:
            path.unlink()

    def write_stream(self, records: Iterable[tuple[int, ItemRecord]], *, prefix: str = "") -> None:
        """One new segment written as ``records`` come (for a whole journal; see write_segment)."""
        if not self._journal_ready:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            self._journal_ready = True
        with (self.journal_dir / segment_name(prefix)).open("wb") as handle:
            buffer: list[bytes] = []
            for index, record in records:
                buffer.append(encode(index, record))
                if len(buffer) >= _WRITE_LINES:
                    handle.write(b"".join(buffer))
                    buffer.clear()
            handle.write(b"".join(buffer))


#: Journal lines joined per write while streaming a whole journal into one segment.
_WRITE_LINES = 4096


def segment_name(prefix: str = "") -> str:
    """A new journal segment's name: its time first (listings read in write order), then a random
    part (two writers never share a name)."""
    return f"{prefix}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"


def state_code(record: ItemRecord) -> int:
    """A record as one of :mod:`.index`'s kinds (a finished job's success is part of its kind)."""
    return _code(record.kind, (record.job or {}).get("state"), record.transient)


def _code(kind: str, job_state: Any, transient: bool) -> int:
    if kind == "intent":
        return INTENT
    if kind == "sub":
        return SUB
    if kind == "done":
        return DONE_OK if job_state == JobState.SUCCEEDED.value else DONE_FAILED
    return ERR_TRANSIENT if transient else ERR


class JournalWriter:
    """Group commit from an event loop: every record pending when a write starts goes in that write.

    ``await append(index, record, durable=True)`` returns once the record is stored (intent records);
    other records ride along with the next write. Writes run in a thread: object storage blocks.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._pending: list[tuple[int, ItemRecord]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        #: This writer's own segment (appended to where storage allows; see Manifest.write_segment).
        self._segment = segment_name()

    async def __aenter__(self) -> JournalWriter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def append(self, index: int, record: ItemRecord, *, durable: bool = False) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the journal writer is not running")
        self._pending.append((index, record))
        self._wake.set()
        if durable:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                records, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    await asyncio.to_thread(self.manifest.write_segment, records, name=self._segment)
                except BaseException as exc:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    raise
                self.writes += 1
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            if self._closed and not self._pending:  # close may arrive during a write
                return
            if self._pending:
                self._wake.set()
