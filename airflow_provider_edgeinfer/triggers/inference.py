"""One trigger for every vendor: waits for one request to end, in the triggerer's event loop.

It only polls (or, for a synchronous vendor, makes the one call), never submits work of its own
and never downloads results. Its kwargs hold ids and settings, never secrets. Its events carry no
model output: a synchronous vendor's answer travels sealed for the task instance
(:mod:`~airflow_provider_edgeinfer.triggers.events`). It shares the HTTP
client of its connection with every other trigger of that connection on the loop, and it does not
poll by itself: it registers its request with the connection's poller
(:mod:`~airflow_provider_edgeinfer.triggers.poller`), which batches the status checks of every
trigger of that connection and wakes this one when its request ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_edgeinfer.exceptions import ConfigurationError, EdgeInferError
from airflow_provider_edgeinfer.hooks.base import ClientLease
from airflow_provider_edgeinfer.triggers.base import EdgeInferTrigger
from airflow_provider_edgeinfer.triggers.events import error_payload, job_event
from airflow_provider_edgeinfer.triggers.poller import Outcome, Watch, is_transient, watch

#: Consecutive transient failures (network, 5xx, malformed answers) tolerated before giving up.
#: A 429 is not one: it pauses the whole connection (see the poller) and only the deadline bounds it.
DEFAULT_MAX_TRANSIENT_FAILURES = 5


class InferenceTrigger(EdgeInferTrigger):
    """Fires exactly one event: ``success``, ``failed``, ``cancelled``, ``timeout`` or ``error``.

    :param conn_id: the Airflow connection; its type chooses the hook.
    :param request_id: the vendor's id of the request to watch.
    :param deadline: epoch seconds (anchored to the submission) after which ``timeout`` fires.
    :param poll_interval: seconds between polls.
    :param cancel_on_kill: cancel the remote request when a user kills the task.
    :param max_transient_failures: consecutive transient poll failures (network errors, 5xx,
        malformed answers) tolerated before an ``error`` event; a 429 is not one.
    :param submitted_at: epoch seconds of the submission, from which log lines count elapsed time
        (default: when the trigger started).
    :param submit: for a synchronous vendor only: ``{service, prediction, input, idempotency_key,
        task}`` of the one call this trigger makes on the worker's behalf (the worker made none);
        ``task`` is the task instance's identity, for which the answer is sealed.
    :param vendor: accepted from triggers deferred by earlier versions; the connection names the vendor.
    """

    serialized: ClassVar[tuple[str, ...]] = (
        "conn_id",
        "request_id",
        "deadline",
        "poll_interval",
        "cancel_on_kill",
        "max_transient_failures",
        "submit",
        "submitted_at",
    )

    def __init__(
        self,
        *,
        conn_id: str,
        request_id: str | None,
        deadline: float,
        poll_interval: float = 10.0,
        cancel_on_kill: bool = True,
        max_transient_failures: int = DEFAULT_MAX_TRANSIENT_FAILURES,
        submit: dict[str, Any] | None = None,
        submitted_at: float | None = None,
        vendor: str | None = None,
    ) -> None:
        super().__init__(conn_id=conn_id, vendor=vendor)
        self.submitted_at = submitted_at
        self.request_id = request_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        self.max_transient_failures = max_transient_failures
        self.submit = submit

    def __repr__(self) -> str:
        return (
            f"InferenceTrigger(conn_id={self.conn_id!r}, "
            f"request_id={self.request_id!r}, deadline={self.deadline:.0f})"
        )

    def event_fields(self) -> dict[str, Any]:
        return {"request_id": self.request_id}

    async def watch(self, lease: ClientLease) -> TriggerEvent:
        if self.submit is not None:
            return await self._call_synchronously(lease)
        return await self._poll(lease)

    async def _call_synchronously(self, lease: ClientLease) -> TriggerEvent:
        spec = self.submit or {}
        identity = spec.get("task")
        hook, client = lease.hook, lease.client
        try:
            if not identity:
                # Without it the answer could not be sealed, and it must not travel in clear: pay nothing.
                raise ConfigurationError(
                    "the deferred call names no task instance to seal its answer for", vendor=self.vendor
                )
            # The key comes from the connection's secret, read before paying for an answer it must seal.
            secrets = hook.credentials(await hook.aconnection()).values()
            call = client.api.submit(
                spec["service"],
                spec["input"],
                prediction=spec.get("prediction"),
                idempotency_key=spec.get("idempotency_key"),
            )
            job = await asyncio.wait_for(client.send(call), timeout=max(1.0, self.deadline - time.time()))
        except TimeoutError:
            return self.event("timeout")
        except EdgeInferError as exc:
            return self.error_event(exc)
        return TriggerEvent(job_event(job, secrets=secrets, identity=str(identity)))

    async def _poll(self, lease: ClientLease) -> TriggerEvent:
        """Wait, through the connection's poller, for the request to end or the deadline to pass."""
        if self.request_id is None:
            raise ValueError("InferenceTrigger needs a request_id or a submit spec")
        async with watch(
            lease.key,
            lease,
            self.request_id,
            interval=self.poll_interval,
            max_failures=self.max_transient_failures,
        ) as entry:
            outcome = await self._wait_logging(entry)
        if outcome is None:
            return self.event("timeout")
        if isinstance(outcome, EdgeInferError):
            return self.event("error", error=error_payload(outcome))
        return TriggerEvent(job_event(outcome))

    async def _wait_logging(self, entry: Watch) -> Outcome | None:
        """The request's outcome, or None at the deadline; its state logged on each change and on the
        heartbeat (:mod:`~airflow_provider_edgeinfer.progress`), so a long wait is never silent."""
        from airflow_provider_edgeinfer.progress import HEARTBEAT_SECONDS, StateProgress

        progress = StateProgress(
            self.log, f"{self.vendor} request {self.request_id}", clock=time.time, since=self.submitted_at
        )
        entry.on_state = progress.report
        progress.report(entry.state)
        while not entry.future.done():
            left = self.deadline - time.time()
            if left <= 0:
                return None
            # asyncio.wait leaves the future alone when it times out: the watch goes on.
            await asyncio.wait({entry.future}, timeout=min(left, HEARTBEAT_SECONDS))
            progress.report(entry.state)
        return entry.future.result()

    async def on_kill(self) -> None:
        """A user killed the task (mark failed/success, clear): cancel the remote request."""
        if not self.cancel_on_kill or not self.request_id:
            return
        request_id = self.request_id

        async def cancel(lease: ClientLease) -> None:
            call = lease.client.api.cancel(request_id)
            if call is None:
                self.log.info("%s cannot cancel requests; %s keeps running", self.vendor, request_id)
                return
            await lease.client.send(call)
            self.log.info("cancelled %s request %s", self.vendor, request_id)

        try:
            await self.with_lease(cancel)
        except EdgeInferError as exc:
            self.log.warning("could not cancel %s request %s: %s", self.vendor, request_id, exc)


__all__ = ["DEFAULT_MAX_TRANSIENT_FAILURES", "InferenceTrigger", "is_transient"]
