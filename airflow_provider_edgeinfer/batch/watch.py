"""Watching a batch until it is over, with few calls per poll (in the triggerer, or on the worker).

- a native batch (a vendor that runs batches itself): one batch status call per poll.
- a fan-out on a vendor that lists request states: its listing (pages of many requests, newest
  first), walked by the client's one scan (``api.scan_requests``) only as deep as the oldest
  request of this round, instead of one GET per request.
- other fan-outs: bounded concurrent GETs of the unfinished requests only.

:func:`follow` polls until the batch is over, its deadline passes or a poll fails for good; it
tolerates transient failures up to a limit. Every read goes through the client's
:class:`~airflow_provider_edgeinfer.clients.ratelimit.PacedSender`: a 429 pauses every user of the
connection's client (the poller's triggers too) and is waited out, never counted as a failed poll.
:func:`cancel_batch` cancels what is still running.
Everything here takes the async client; nothing submits, nothing writes results.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_edgeinfer.clients.ratelimit import DeadlinePassed, PacedSender
from airflow_provider_edgeinfer.clients.retry import is_transient
from airflow_provider_edgeinfer.exceptions import (
    EdgeInferError,
    JobFailedError,
    NotFoundError,
)
from airflow_provider_edgeinfer.progress import BatchProgress

DEFAULT_MAX_TRANSIENT_FAILURES = 5
POLL_JITTER = 0.2
DEFAULT_POLL_CONCURRENCY = 16


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

    def unfinished(self) -> list[str]:
        return []


class NativeWatch(Watch):
    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.total = 0

    async def poll(self, client: Any) -> Progress:
        status = (await client.send(client.api.batch_status(self.batch_id))).data
        job = client.api.batch_to_job(status)  # an unknown state is an error, not "running"
        self.total = status.total_count
        return Progress(
            status.total_count,
            status.completed_count,
            status.failed_count,
            state=status.state,
            finished=job.terminal and status.state != "cancelling",
            cost_usd=status.total_cost_usd,
        )


@dataclass
class FanOutWatch(Watch):
    """The requests of one fan-out round; terminal ones are counted once and forgotten."""

    ids: set[str]
    since: float
    total: int
    settled_succeeded: int = 0
    settled_failed: int = 0
    concurrency: int = DEFAULT_POLL_CONCURRENCY
    calls: list[int] = field(default_factory=list)
    #: Requests the last listing scan did not reach, asked one by one.
    _unseen: list[str] = field(default_factory=list)

    def unfinished(self) -> list[str]:
        return sorted(self.ids)

    def _settle(self, request_id: str, job: Any) -> None:
        from airflow_provider_edgeinfer.clients.jobs import JobState

        if job.terminal and request_id in self.ids:
            self.ids.discard(request_id)
            if job.state is JobState.SUCCEEDED:
                self.settled_succeeded += 1
            else:
                self.settled_failed += 1

    def _progress(self) -> Progress:
        return Progress(
            self.total, self.settled_succeeded, self.settled_failed, finished=not self.ids, state=None
        )

    async def poll(self, client: Any) -> Progress:
        calls = 0
        api = client.api
        rest = sorted(self.ids)
        if api.lists_request_states and self.ids:
            calls += await self._scan_listing(client)
            rest = self._unseen
        calls += await self._get_each(client, rest)
        self.calls.append(calls)
        return self._progress()

    async def _scan_listing(self, client: Any) -> int:
        """The vendor's listing, walked until every unfinished request of ours was seen."""
        api = client.api
        unseen = set(self.ids)
        scan = api.scan_requests(self.since)
        # Only this batch's ended requests are validated.
        async with contextlib.aclosing(scan.awalk(client.send)) as entries:
            async for entry in entries:
                if entry.id not in unseen:
                    continue
                unseen.discard(entry.id)
                job = api.job_if_ended(entry)
                if job is not None:
                    self._settle(entry.id, job)
                if not unseen:
                    break
        # Not in the listing (deleted, or beyond what it returns): asked one by one below.
        self._unseen = sorted(unseen)
        return int(scan.pages)

    async def _get_each(self, client: Any, ids: list[str]) -> int:
        if not ids:
            return 0
        api = client.api
        semaphore = asyncio.Semaphore(self.concurrency)
        failure: list[BaseException] = []

        async def one(request_id: str) -> None:
            async with semaphore:
                call = api.status(request_id)
                try:
                    job = await client.send(call)
                except (NotFoundError, JobFailedError) as exc:
                    # The request is gone or failed for good: a failed item, not a failed poll.
                    if request_id in self.ids:
                        self.ids.discard(request_id)
                        self.settled_failed += 1
                    del exc
                    return
                except EdgeInferError as exc:
                    failure.append(exc)
                    return
                self._settle(request_id, job)

        await asyncio.gather(*(one(i) for i in ids))
        # A few items whose read failed transiently stay unsettled and are read again next round;
        # the round itself failed only if nothing got through or an error will not go away.
        lasting = [exc for exc in failure if not is_transient(exc)]
        if lasting:
            raise lasting[0]
        if failure and len(failure) == len(ids):
            raise failure[0]
        return len(ids)


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
    ids = watch.unfinished()
    if not ids or api.cancel(ids[0]) is None:
        if ids:
            log.info("%s cannot cancel requests; %d keep running", api.vendor, len(ids))
        return 0
    semaphore = asyncio.Semaphore(DEFAULT_POLL_CONCURRENCY)
    cancelled = 0

    async def one(request_id: str) -> None:
        nonlocal cancelled
        async with semaphore:
            try:
                await client.send(api.cancel(request_id))
                cancelled += 1
            except EdgeInferError as exc:
                log.warning("could not cancel %s request %s: %s", api.vendor, request_id, exc)

    await asyncio.gather(*(one(i) for i in ids))
    log.info("cancelled %d unfinished %s requests", cancelled, api.vendor)
    return cancelled


def load_fanout_watch(output_path: str, round: int, concurrency: int) -> FanOutWatch:
    """The requests of ``round`` still to watch, read from the manifest (blocking: run in a thread)."""
    from airflow_provider_edgeinfer.batch.manifest import Manifest
    from airflow_provider_edgeinfer.clients.jobs import JobState
    from airflow_provider_edgeinfer.storage import as_storage_path

    records = [r for r in Manifest(as_storage_path(output_path)).items().values() if r.round == round]
    ids = {r.request_id for r in records if r.kind == "sub" and r.request_id}
    since = min((r.at or time.time() for r in records if r.kind == "sub"), default=time.time())
    # Items already settled in this round: a synchronous vendor's jobs, refusals, lost submissions.
    succeeded = sum(
        1 for r in records if r.kind == "done" and (r.job or {}).get("state") == JobState.SUCCEEDED.value
    )
    failed = sum(1 for r in records if r.kind != "sub") - succeeded
    return FanOutWatch(
        ids,
        since,
        total=len(records),
        settled_succeeded=succeeded,
        settled_failed=failed,
        concurrency=concurrency,
    )
