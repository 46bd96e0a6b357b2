"""BatchTrigger: waits for a whole batch in the triggerer.

A thin shell over :mod:`airflow_provider_edgeinfer.batch.watch` (what a poll reads, how often, how
failures are tolerated): this class owns the serialized kwargs, the client lease and the event.
Kwargs hold a reference (batch id, or the output directory whose manifest lists the requests),
never thousands of ids. It fires ``timeout`` at its deadline and cancels remote work in ``on_kill``.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_edgeinfer.batch.watch import (
    DEFAULT_POLL_CONCURRENCY,
    NativeWatch,
    Progress,
    Watch,
    cancel_batch,
    follow,
    load_watch,
)
from airflow_provider_edgeinfer.clients.retry import DEFAULT_MAX_TRANSIENT_FAILURES
from airflow_provider_edgeinfer.exceptions import EdgeInferError
from airflow_provider_edgeinfer.hooks.base import ClientLease
from airflow_provider_edgeinfer.triggers.base import EdgeInferTrigger


class BatchTrigger(EdgeInferTrigger):
    """Fires one event: ``success`` (the batch is over, whatever its items did), ``cancelled``,
    ``timeout`` or ``error``, with counts.

    :param vendor: hook to use.
    :param conn_id: the Airflow connection.
    :param batch_id: native batch id (mode ``native``).
    :param output_path: the batch's output directory URI, whose manifest lists a fan-out's requests.
    :param round: the fan-out round to watch (``item_retries`` resubmits in later rounds).
    :param deadline: epoch seconds after which ``timeout`` fires.
    :param poll_interval: seconds between polls of the whole batch.
    :param cancel_on_kill: cancel the native batch, or every unfinished request, when a user kills
        the task.
    :param max_transient_failures: consecutive transient poll failures (network errors, 5xx,
        malformed answers) tolerated before an ``error`` event; a 429 is not one.
    :param poll_concurrency: fan-out only: status reads in flight at once, for a vendor that cannot
        list its requests.
    """

    serialized: ClassVar[tuple[str, ...]] = (
        "vendor",
        "conn_id",
        "deadline",
        "batch_id",
        "output_path",
        "round",
        "poll_interval",
        "cancel_on_kill",
        "max_transient_failures",
        "poll_concurrency",
    )

    def __init__(
        self,
        *,
        vendor: str,
        conn_id: str,
        deadline: float,
        batch_id: str | None = None,
        output_path: str | None = None,
        round: int = 0,
        poll_interval: float = 30.0,
        cancel_on_kill: bool = True,
        max_transient_failures: int = DEFAULT_MAX_TRANSIENT_FAILURES,
        poll_concurrency: int = DEFAULT_POLL_CONCURRENCY,
    ) -> None:
        if (batch_id is None) == (output_path is None):
            raise ValueError("give exactly one of batch_id (native batch) and output_path (fan-out)")
        super().__init__(vendor=vendor, conn_id=conn_id)
        self.deadline = deadline
        self.batch_id = batch_id
        self.output_path = output_path
        self.round = round
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        self.max_transient_failures = max_transient_failures
        self.poll_concurrency = poll_concurrency
        self._watch: Watch | None = None

    def __repr__(self) -> str:
        what = f"batch_id={self.batch_id!r}" if self.batch_id else f"output_path={self.output_path!r}"
        return f"BatchTrigger(vendor={self.vendor!r}, conn_id={self.conn_id!r}, {what}, round={self.round})"

    def event_fields(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "output_path": self.output_path,
            "round": self.round,
            "counts": None,
        }

    def _event(self, status: str, progress: Progress | None = None, **extra: Any) -> TriggerEvent:
        counts = progress.as_dict() if progress is not None else None
        return self.event(status, counts=counts, **extra)

    async def make_watch(self) -> Watch:
        if self.batch_id is not None:
            return NativeWatch(self.batch_id)
        return await asyncio.to_thread(load_watch, str(self.output_path), self.round, self.poll_concurrency)

    async def watch(self, lease: ClientLease) -> TriggerEvent:
        self._watch = await self.make_watch()
        ended = await follow(
            lease.client,
            self._watch,
            deadline=self.deadline,
            poll_interval=self.poll_interval,
            max_transient_failures=self.max_transient_failures,
            log=self.log,
        )
        if ended.error is not None:
            return self.error_event(ended.error)
        return self._event(ended.status, ended.progress)

    async def on_kill(self) -> None:
        """A user killed the task: cancel the native batch, or every unfinished request of the fan-out."""
        if not self.cancel_on_kill:
            return

        async def cancel(lease: ClientLease) -> None:
            await cancel_batch(lease.client, self.batch_id, self._watch or await self.make_watch(), self.log)

        try:
            await self.with_lease(cancel)
        except EdgeInferError as exc:
            self.log.warning("could not cancel the batch: %s", exc)
