"""Fan-out: a batch sent as one request per item, from the worker, with bounded async concurrency.

Used for the vendors without a native batch (for a vendor that answers in the submitting call, the
fan-out is the inference itself). A fixed pool of ``concurrency`` senders pulls items, so memory does
not grow with the batch. Every send goes through one
:class:`~airflow_provider_edgeinfer.clients.retry.PacedSender` on one
:class:`~airflow_provider_edgeinfer.clients.retry.RateLimiter`: a 429 (or a 503 with
``Retry-After``) pauses every sender, the whole fan-out backs off, a 429 never counts against an
item's attempts, and no pause outlasts the batch's ``timeout``. Each call is sent once by the
transport (``max_attempts=1``); the paced sender retries, through tenacity, under the one policy.

Every item leaves a journal record (:mod:`airflow_provider_edgeinfer.batch.manifest`):
``intent`` before it is sent, then ``sub`` (request id), ``done`` (a synchronous vendor's whole job)
or ``err``. A send whose answer was lost stays at ``intent``: :func:`resolve_unknown` settles it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.batch.manifest import ItemRecord
from airflow_provider_edgeinfer.batch.results import patient_read
from airflow_provider_edgeinfer.clients.core import InlineFile
from airflow_provider_edgeinfer.clients.retry import DeadlinePassed, PacedSender, is_transient
from airflow_provider_edgeinfer.clients.transport import RateLimiter
from airflow_provider_edgeinfer.exceptions import (
    EdgeInferError,
    OutcomeUnknownError,
    UnexpectedResponseError,
    error_payload,
)
from airflow_provider_edgeinfer.hooks.base import input_hash

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.manifest import JournalWriter
    from airflow_provider_edgeinfer.clients.core import Job, VendorAPI
    from airflow_provider_edgeinfer.clients.transport import HttpSettings
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

log = logging.getLogger("airflow_provider_edgeinfer.batch")


@dataclass
class FanOutStats:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, other: FanOutStats) -> None:
        """Count another part of the same round in (sent a chunk at a time)."""
        self.sent += other.sent
        self.failed += other.failed
        self.unknown += other.unknown

    def rate(self) -> float:
        return self.sent / max(1e-6, time.monotonic() - self.started)


def sender_for(api: VendorAPI, credentials: Any, settings: HttpSettings, probe: Any) -> Any:
    """The lean aiohttp sender when it can carry these calls exactly, else the httpx AsyncClient.

    Both are async context managers with ``send(call)``; ``settings`` allow one attempt per send.
    """
    from airflow_provider_edgeinfer.clients.transport import AsyncClient

    try:
        from airflow_provider_edgeinfer.clients.aiosend import LeanSender, supports
    except ImportError:  # aiohttp missing
        return AsyncClient(api, credentials, settings)
    if supports(api, probe):
        return LeanSender(api, credentials, settings.max_connections, settings=settings)
    return AsyncClient(api, credentials, settings)


def single_attempt(settings: HttpSettings, concurrency: int) -> HttpSettings:
    """The connection's settings, with retries left to the fan-out and a pool as wide as it is."""
    return replace(
        settings,
        retry=replace(settings.retry, max_attempts=1),
        max_connections=max(settings.max_connections, concurrency),
    )


@dataclass
class FanOut:
    """One round of submissions. ``prepare`` turns a chunk of items into what is sent (uploads)."""

    api: VendorAPI
    #: AsyncClient or LeanSender: anything with ``async send(call)``, one attempt per send.
    client: Any
    writer: JournalWriter
    service: str
    prediction: str | None
    round: int
    concurrency: int
    deadline: float
    #: The connection's settings; their retry policy is the paced sender's (the client sends once).
    settings: HttpSettings
    vendor_options: dict[str, Any] = field(default_factory=dict)
    #: Turns an item into what is sent, just before it is sent (a file read to travel inline, or
    #: uploaded): each sender prepares its own item, so preparing and sending overlap.
    prepare: Callable[[BatchItem], Awaitable[BatchItem]] | None = None
    progress_every: float = 10.0
    stats: FanOutStats = field(default_factory=FanOutStats)
    #: The fan-out's one pause: every sender waits on it, every 429 extends it.
    limiter: RateLimiter = field(default_factory=RateLimiter)

    async def run(self, items: Iterator[BatchItem], total: int) -> FanOutStats:
        from airflow_provider_edgeinfer.progress import Cadence

        # Progress lines follow the one cadence rule; the start itself is not worth a line.
        self._cadence = Cadence(min_gap=self.progress_every)
        self._cadence.due((0, 0))
        self._total = total
        senders = [asyncio.create_task(self._sender(items)) for _ in range(max(1, self.concurrency))]
        try:
            await asyncio.gather(*senders)
        finally:
            for task in senders:
                task.cancel()
        return self.stats

    async def _sender(self, items: Iterator[BatchItem]) -> None:
        # Iterators are not shared across threads here: every sender runs on this one event loop.
        for item in items:
            await self._send(item)
            if self._cadence.due((self.stats.sent, self.stats.failed)):
                log.info(
                    "submitted %d of %d (%.0f/s, %d refused, %d rate-limit pauses)",
                    self.stats.sent,
                    self._total,
                    self.stats.rate(),
                    self.stats.failed,
                    self.limiter.throttled_count,
                )

    async def _send(self, item: BatchItem) -> None:
        sent = item
        if self.prepare is not None:
            try:
                sent = await self.prepare(item)
            except DeadlinePassed:
                await self._fail(item, "not uploaded before the batch timeout", transient=True)
                return
            except EdgeInferError as exc:
                # Nothing was submitted: a refused file fails its item, a store or upload outage
                # (transient) leaves it to the next round.
                await self._fail(item, exc, transient=is_transient(exc))
                return
        call = self.api.submit(self.service, sent.input, prediction=self.prediction, **self.vendor_options)
        intent = ItemRecord(
            "intent", self.round, at=time.time(), input_hash=input_hash(_as_listed(item, sent))
        )
        await self.writer.append(item.index, intent, durable=True)
        sender = PacedSender(self.client.send, self.limiter, self.settings.retry, deadline=self.deadline)
        try:
            job: Job = await sender.send(call)
        except DeadlinePassed:
            await self._fail(item, "not submitted before the batch timeout", transient=True)
            return
        except (OutcomeUnknownError, UnexpectedResponseError):
            # Sent, answer lost or unreadable: the request may exist. Settled by resolve_unknown.
            self.stats.unknown += 1
            return
        except EdgeInferError as exc:
            await self._fail(item, exc, transient=is_transient(exc))
            return
        await self._record(item, job)

    async def _record(self, item: BatchItem, job: Job) -> None:
        self.stats.sent += 1
        if job.terminal:
            record = ItemRecord(
                "done", self.round, job.request_id, time.time(), job=job.model_dump(mode="json")
            )
        else:
            record = ItemRecord("sub", self.round, job.request_id, time.time())
        await self.writer.append(item.index, record)

    async def _fail(self, item: BatchItem, error: EdgeInferError | str, *, transient: bool) -> None:
        self.stats.failed += 1
        payload = (
            error_payload(error)
            if isinstance(error, EdgeInferError)
            else {"type": "JobTimeoutError", "message": error}
        )
        record = ItemRecord("err", self.round, at=time.time(), error=payload, transient=transient)
        await self.writer.append(item.index, record)


def _as_listed(item: BatchItem, sent: BatchItem) -> dict[str, Any]:
    """The input as the vendor's listing will show it, to find the request if its answer is lost:
    as sent (an uploaded file by the name the vendor gave it; hashing the source's name instead
    let a resumed batch submit again every upload whose answer its killed try lost), but a file
    sent inline as listed (its bytes are not worth hashing; no vendor's listing echoes them)."""
    if any(isinstance(value, InlineFile) for value in sent.input.values()):
        return item.input
    return sent.input


# -- lost submissions ----------------------------------------------------------------------------


def resolve_unknown(
    hook: EdgeInferHook,
    service: str,
    prediction: str | None,
    unknown: dict[int, ItemRecord],
    known_ids: Container[str],
) -> tuple[dict[int, str], bool]:
    """Request ids of items whose submission outcome was lost, found in the vendor's listing.

    Returns ({index: request_id}, searched). ``searched`` False means the vendor offers no listing,
    so an item not found may still exist. Items with equal inputs are matched one request each.
    """
    if not unknown:
        return {}, True
    if not hook.finds_lost_submissions:
        return {}, False
    now = time.time()
    lost = {i: (r.input_hash, r.at or now) for i, r in unknown.items() if r.input_hash}
    # Read patiently: giving up here fails the task with paid work in flight.
    found = hook.find_lost_submissions(
        service, prediction, lost, known_ids, send=lambda call: patient_read(hook, call)
    )
    return {index: job.request_id for index, job in found.items()}, True
