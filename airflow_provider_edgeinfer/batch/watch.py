"""Watching a batch until it is over, with few calls per poll (in the triggerer, or on the worker).

- a native batch (a vendor that runs batches itself): one batch status call per poll.
- a fan-out on a vendor that lists request states: its listing (pages of many requests, newest
  first), walked by the client's one scan (``api.scan_requests``) only as deep as the oldest
  request of this round, instead of one GET per request.
- other fan-outs: bounded concurrent GETs of the unfinished requests only.

:func:`follow` polls until the batch is over, its deadline passes or a poll fails for good; it
tolerates transient failures up to a limit. Every read goes through the client's
:class:`~airflow_provider_edgeinfer.clients.retry.PacedSender`: a 429 pauses every user of the
connection's client (the poller's triggers too) and is waited out, never counted as a failed poll.
:func:`cancel_batch` cancels what is still running.
Everything here takes the async client; nothing submits, nothing writes results.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_edgeinfer.batch.index import DONE_OK, SUB, IdIndex, ItemStates
from airflow_provider_edgeinfer.clients.retry import (
    DeadlinePassed,
    PacedSender,
    is_transient,
)
from airflow_provider_edgeinfer.exceptions import (
    EdgeInferError,
    JobFailedError,
    NotFoundError,
)
from airflow_provider_edgeinfer.progress import BatchProgress

POLL_JITTER = 0.2
DEFAULT_POLL_CONCURRENCY = 16
#: A state-filtered listing may show a few requests in another state: they ended while the vendor
#: answered (the filter and the entries are read at different instants). Only when at least this many,
#: and more than this share of the entries read, are in another state is the filter taken as ignored
#: (the watch then reads the whole listing, which tells every state, at a higher cost per poll).
IGNORED_FILTER_MIN = 5
IGNORED_FILTER_SHARE = 0.1


@dataclass
class Progress:
    total: int
    succeeded: int = 0
    failed: int = 0
    #: The vendor's word that the batch is over (native batches; a fan-out is over when all are).
    state: str | None = None
    finished: bool = False
    cost_usd: float | None = None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "state": self.state,
            "cost_usd": self.cost_usd,
        }


class Watch:
    """What one poll of a batch reads; keeps state across polls so later polls do less."""

    total: int

    async def poll(self, client: Any) -> Progress:
        raise NotImplementedError

    def unfinished(self) -> Iterable[str]:
        """Request ids that may still run (streamed: a batch may hold a million)."""
        return ()


class NativeWatch(Watch):
    """One native batch, or the several a big round was split into: one status call per poll for
    each batch that has not ended (a batch that ended is counted from its last status)."""

    def __init__(self, batch_id: str, *more: str) -> None:
        self.batch_ids = [batch_id, *more]
        self.batch_id = batch_id
        self.total = 0
        self._ended: dict[str, Any] = {}

    async def poll(self, client: Any) -> Progress:
        statuses = []
        for batch_id in self.batch_ids:
            status = self._ended.get(batch_id)
            if status is None:
                status = (await client.send(client.api.batch_status(batch_id))).data
                job = client.api.batch_to_job(status)  # an unknown state is an error, not "running"
                if job.terminal and status.state != "cancelling":
                    self._ended[batch_id] = status
            statuses.append(status)
        self.total = sum(status.total_count for status in statuses)
        costs = [status.total_cost_usd for status in statuses if status.total_cost_usd is not None]
        states = {status.state for status in statuses}
        # One state for the whole: the last batch's while any runs; "cancelled" if any was cancelled.
        state = next((s for s in ("cancelling", "cancelled") if s in states), statuses[-1].state)
        return Progress(
            self.total,
            sum(status.completed_count for status in statuses),
            sum(status.failed_count for status in statuses),
            state=state if len(statuses) > 1 else statuses[0].state,
            finished=len(self._ended) == len(self.batch_ids),
            cost_usd=sum(costs) if costs else None,
        )


@dataclass
class FanOutWatch(Watch):
    """The requests of one fan-out round, by item index; memory is a few bytes per item.

    ``ids`` maps this round's request ids to their items; ``open`` marks the items whose request may
    still run; ``requests()`` streams ``(index, request id)`` of the round from the manifest, for the
    reads that must name each request (one GET each, cancelling).

    On a vendor whose listing filters by state (``api.unfinished_states``), a poll reads only the
    listings of unfinished requests: its calls follow what is left, not the batch. A request of ours
    absent from them has ended; once none is left, the listings of unsuccessful states count the
    failures. Otherwise the whole listing is walked down to the oldest open request, and what it did
    not show is asked one by one (as is everything, on a vendor without a listing).
    """

    ids: IdIndex
    open: bytearray
    requests: Callable[[], Iterator[tuple[int, str]]]
    since: float
    total: int
    settled_succeeded: int = 0
    settled_failed: int = 0
    concurrency: int = DEFAULT_POLL_CONCURRENCY
    calls: list[int] = field(default_factory=list)
    #: Requests seen to end by their absence from the unfinished listings, not yet told apart.
    _ended: int = 0
    _absent: bytearray = field(default_factory=bytearray)
    #: The vendor answered a state-filtered listing with other states: it ignores the filter.
    _unfiltered: bool = False

    @classmethod
    def of(cls, request_ids: Sequence[str], since: float, **kwargs: Any) -> FanOutWatch:
        """A watch of ``request_ids`` (item ``i`` is the ``i``-th), held in memory: small batches."""
        ids = IdIndex(len(request_ids))
        for index, request_id in enumerate(request_ids):
            ids.add(request_id, index)
        return cls(
            ids,
            bytearray(b"\x01" * len(request_ids)),
            lambda: iter(enumerate(request_ids)),
            since,
            **{"total": len(request_ids), **kwargs},
        )

    @property
    def open_count(self) -> int:
        return self.open.count(1)

    def unfinished(self) -> Iterator[str]:
        done = bytearray(len(self.open))
        for index, request_id in self.requests():
            if self.open[index] and not done[index]:
                done[index] = 1
                yield request_id

    def _close(self, index: int, job: Any) -> None:
        from airflow_provider_edgeinfer.clients.core import JobState

        if job.terminal and self.open[index]:
            self.open[index] = 0
            if job.state is JobState.SUCCEEDED:
                self.settled_succeeded += 1
            else:
                self.settled_failed += 1

    def _progress(self) -> Progress:
        # Requests known to have ended, not yet told apart, count as done and not (yet) failed.
        return Progress(
            self.total,
            self.settled_succeeded + self._ended,
            self.settled_failed,
            finished=not self.open_count and not self._ended,
            state=None,
        )

    async def poll(self, client: Any) -> Progress:
        calls = 0
        api = client.api
        filtered = api.lists_request_states and api.unfinished_states
        if filtered and not self._unfiltered and (self.open_count or self._ended):
            calls += await self._scan_unfinished(client)
            if not self.open_count and self._ended and not self._unfiltered:
                calls += await self._count_unsuccessful(client)
        if self._unfiltered and self._ended:
            # The counts of requests closed by absence cannot be told apart: read them again.
            self._reopen_ended()
        if self.open_count and not (filtered and not self._unfiltered):
            seen = bytearray(len(self.open))
            if api.lists_request_states:
                calls += await self._scan_listing(client, seen)
            calls += await self._get_each(client, seen)
        self.calls.append(calls)
        return self._progress()

    async def _walk_states(
        self, client: Any, states: Sequence[str], visit: Callable[[Any, int | None, str], None]
    ) -> tuple[int, bool]:
        """Walk the vendor's listing of each of ``states``, showing ``visit(entry, index, state)`` every
        entry (``index``: the item, None if not ours). Returns the pages read and whether entries moved
        between pages. An entry in another state than its listing's ended while the vendor answered;
        many of them mean the vendor ignores the filter: the walk stops, and the watch reads the whole
        listing from then on (``_unfiltered``)."""
        api = client.api
        pages, shifted, read, moved = 0, False, 0, 0
        for state in states:
            scan = api.scan_requests(self.since, state=state)
            async with contextlib.aclosing(scan.awalk(client.send)) as entries:
                async for entry in entries:
                    read += 1
                    if entry.state != state:
                        moved += 1
                        if moved >= IGNORED_FILTER_MIN and moved > read * IGNORED_FILTER_SHARE:
                            self._unfiltered = True
                            return pages + int(scan.pages), shifted
                    visit(entry, self.ids.get(entry.id), state)
            pages += int(scan.pages)
            shifted = shifted or scan.shifted
        return pages, shifted

    async def _scan_unfinished(self, client: Any) -> int:
        """Read the unfinished listings (in lifecycle order); close what they do not show."""
        api = client.api
        seen = bytearray(len(self.open))

        def visit(entry: Any, index: int | None, state: str) -> None:
            if index is None:
                return
            seen[index] = 1
            if entry.state != state and entry.state not in api.unfinished_states:
                job = api.job_if_ended(entry)  # it ended while the vendor answered: its entry says how
                if job is not None:
                    self._close(index, job)

        pages, shifted = await self._walk_states(client, api.unfinished_states, visit)
        if self._unfiltered or shifted:
            # Shifted: entries moved between pages during the walk, so one of ours may have been
            # skipped; nothing is closed on this poll's word (it is closed on a later, steady one).
            return pages
        if not self._absent:
            self._absent = bytearray(len(self.open))
        for index in _ones(self.open):
            if not seen[index]:
                self.open[index] = 0
                self._absent[index] = 1
                self._ended += 1
        return pages

    async def _count_unsuccessful(self, client: Any) -> int:
        """Every request of ours has ended: the unsuccessful listings say how many failed."""
        failed = bytearray(len(self.open))

        def visit(entry: Any, index: int | None, state: str) -> None:
            if index is not None and entry.state == state:
                failed[index] = 1

        pages, _ = await self._walk_states(client, client.api.unsuccessful_states, visit)
        if self._unfiltered:
            return pages
        count = min(failed.count(1), self._ended)
        self.settled_failed += count
        self.settled_succeeded += self._ended - count
        self._ended = 0
        self._absent = bytearray()
        return pages

    def _reopen_ended(self) -> None:
        """Requests closed by their absence become open again, to be read one way that tells."""
        for index in _ones(self._absent):
            self.open[index] = 1
        self._absent = bytearray()
        self._ended = 0

    async def _scan_listing(self, client: Any, seen: bytearray) -> int:
        """The vendor's whole listing, walked until every open request of ours was seen."""
        api = client.api
        remaining = self.open_count
        scan = api.scan_requests(self.since)
        # Only this batch's ended requests are validated.
        async with contextlib.aclosing(scan.awalk(client.send)) as entries:
            async for entry in entries:
                index = self.ids.get(entry.id)
                if index is None or not self.open[index] or seen[index]:
                    continue
                seen[index] = 1
                remaining -= 1
                job = api.job_if_ended(entry)
                if job is not None:
                    self._close(index, job)
                if not remaining:
                    break
        return int(scan.pages)

    async def _get_each(self, client: Any, seen: bytearray) -> int:
        """One GET per open request not ``seen`` in a listing, ``concurrency`` at a time."""
        api = client.api
        failure: list[BaseException] = []
        asked = 0

        async def one(index: int, request_id: str) -> None:
            call = api.status(request_id)
            try:
                job = await client.send(call)
            except (NotFoundError, JobFailedError):
                # The request is gone or failed for good: a failed item, not a failed poll.
                if self.open[index]:
                    self.open[index] = 0
                    self.settled_failed += 1
                return
            except EdgeInferError as exc:
                failure.append(exc)
                return
            self._close(index, job)

        async def worker(queue: Iterator[tuple[int, str]]) -> None:
            nonlocal asked
            for index, request_id in queue:
                asked += 1
                await one(index, request_id)

        wanted = (
            (index, request_id)
            for index, request_id in self.requests()
            if self.open[index] and not seen[index] and not _mark(seen, index)
        )
        await asyncio.gather(*(worker(wanted) for _ in range(self.concurrency)))
        # A few items whose read failed transiently stay unsettled and are read again next round;
        # the round itself failed only if nothing got through or an error will not go away.
        lasting = [exc for exc in failure if not is_transient(exc)]
        if lasting:
            raise lasting[0]
        if failure and len(failure) == asked:
            raise failure[0]
        return asked


def _mark(flags: bytearray, index: int) -> bool:
    """Set ``flags[index]``; False, so it can sit in a filter that must go on."""
    flags[index] = 1
    return False


def _ones(flags: bytearray) -> Iterator[int]:
    """Indices of the set flags (found with bytearray.find: fast when few are set)."""
    index = flags.find(1)
    while index != -1:
        yield index
        index = flags.find(1, index + 1)


@dataclass
class Ended:
    """How watching ended: ``success`` (the batch is over, whatever its items did), ``cancelled``,
    ``timeout``, or ``error`` with the error that ended it."""

    status: str
    progress: Progress | None = None
    error: EdgeInferError | None = None


async def follow(
    client: Any,
    watch: Watch,
    *,
    deadline: float,
    poll_interval: float,
    max_transient_failures: int,
    log: Any,
) -> Ended:
    """Poll ``watch`` every ``poll_interval`` (jittered) until the batch ends or ``deadline`` passes."""
    failures = 0
    reporter = BatchProgress(log)
    # One attempt per read: the paced sender retries, waiting out the connection's 429 pauses.
    sender = PacedSender.of(client, deadline=deadline)
    while True:
        if time.time() >= deadline:
            return Ended("timeout")
        try:
            progress = await watch.poll(sender)
        except DeadlinePassed:
            return Ended("timeout")
        except EdgeInferError as exc:
            failures += 1
            if not is_transient(exc) or failures > max_transient_failures:
                return Ended("error", error=exc)
            log.warning("batch poll failed (%s of %s tolerated): %s", failures, max_transient_failures, exc)
        else:
            failures = 0
            reporter.report(progress.done, progress.failed, progress.total, progress.state, progress.cost_usd)
            if progress.finished:
                cancelled = progress.state in ("cancelled", "cancelling")
                return Ended("cancelled" if cancelled else "success", progress)
        interval = poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        await asyncio.sleep(max(0.0, min(interval, deadline - time.time())))


async def cancel_batch(client: Any, batch_id: str | None, watch: Watch, log: Any) -> int:
    """Cancel remote work; returns how many cancel calls succeeded."""
    api = client.api
    if batch_id is not None:
        await client.send(api.batch_cancel(batch_id))
        log.info("cancelled %s batch %s", api.vendor, batch_id)
        return 1
    if isinstance(watch, NativeWatch):
        for one in watch.batch_ids:
            await client.send(api.batch_cancel(one))
        log.info("cancelled %d %s batches", len(watch.batch_ids), api.vendor)
        return len(watch.batch_ids)
    ids = iter(watch.unfinished())
    first = next(ids, None)
    if first is None:
        return 0
    if api.cancel(first) is None:
        log.info("%s cannot cancel requests; %d keep running", api.vendor, 1 + sum(1 for _ in ids))
        return 0
    ids = itertools.chain([first], ids)
    cancelled = 0

    async def worker() -> None:
        # A fixed pool pulls from the one stream: no task per request of a million-item batch.
        nonlocal cancelled
        for request_id in ids:
            try:
                await client.send(api.cancel(request_id))
                cancelled += 1
            except EdgeInferError as exc:
                log.warning("could not cancel %s request %s: %s", api.vendor, request_id, exc)

    await asyncio.gather(*(worker() for _ in range(DEFAULT_POLL_CONCURRENCY)))
    log.info("cancelled %d unfinished %s requests", cancelled, api.vendor)
    return cancelled


def load_watch(output_path: str, round: int, concurrency: int) -> Watch:
    """The watch of ``round`` of the batch in ``output_path`` (blocking: run in a thread): its native
    batches, or the requests of its fan-out."""
    from airflow_provider_edgeinfer.batch.manifest import Manifest
    from airflow_provider_edgeinfer.storage import as_storage_path

    manifest = Manifest(as_storage_path(output_path))
    header = manifest.read_header() if manifest.has_header() else None
    if header is not None and header.mode == "native" and round < len(header.rounds):
        batch_ids = header.rounds[round].batch_ids
        if batch_ids:
            return NativeWatch(*batch_ids)
    return load_fanout_watch(output_path, round, concurrency)


def load_fanout_watch(output_path: str, round: int, concurrency: int) -> FanOutWatch:
    """The requests of ``round`` still to watch, read from the manifest (blocking: run in a thread).

    One pass over the journal; what is kept is a few bytes per item (:mod:`.index`).
    """
    from airflow_provider_edgeinfer.batch.manifest import Manifest, state_code
    from airflow_provider_edgeinfer.storage import as_storage_path

    manifest = Manifest(as_storage_path(output_path))
    header = manifest.read_header() if manifest.has_header() else None
    # A journal without a header (written by hand, or by tests) is sized by its largest index.
    total = header.total if header is not None else 1 + max((i for i, _ in manifest.records()), default=-1)
    states = ItemStates(total)
    ids = IdIndex(total)
    since: float | None = None
    for index, record in manifest.records():
        states.apply(index, state_code(record), record.round)
        if record.kind == "sub" and record.round == round and record.request_id and 0 <= index < total:
            ids.add(record.request_id, index)
            since = min(since, record.at or time.time()) if since is not None else (record.at or time.time())
    in_round = Counter(states.kind(i) for i in range(total) if states.round(i) == round and states.kind(i))
    open_ = bytearray(total)
    for index in range(total):
        if states.kind(index) == SUB and states.round(index) == round:
            open_[index] = 1

    def requests() -> Iterator[tuple[int, str]]:
        for index, record in manifest.records():
            if record.kind == "sub" and record.round == round and record.request_id and 0 <= index < total:
                yield index, record.request_id

    # Items already settled in this round: a synchronous vendor's jobs, refusals, lost submissions.
    succeeded = in_round[DONE_OK]
    failed = sum(in_round.values()) - in_round[SUB] - succeeded
    return FanOutWatch(
        ids,
        open_,
        requests,
        since if since is not None else time.time(),
        total=sum(in_round.values()),
        settled_succeeded=succeeded,
        settled_failed=failed,
        concurrency=concurrency,
    )
