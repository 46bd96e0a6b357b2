"""One trigger for every vendor: waits for one request to end, in the triggerer's event loop.

It only polls (or, for a synchronous vendor, makes the one call), never submits work of its own
and never downloads results. Its kwargs hold ids and settings, never secrets. Its events carry no
model output: a synchronous vendor's answer travels sealed for the task instance
(:mod:`~airflow_provider_edgeinfer.triggers.base`). It shares the HTTP
client of its connection with every other trigger of that connection on the loop, and it does not
poll by itself: it registers its request with the connection's poller (:func:`watch`), which
batches the status checks of every trigger of that connection and wakes this one when its request
ends.

**The poller**, one per (event loop, connection): many triggers' status checks as few vendor calls.

Each :class:`~airflow_provider_edgeinfer.triggers.inference.InferenceTrigger` registers the request it
waits for (:func:`watch`) and sleeps on a future. One task per connection and loop polls for all of
them and settles a trigger's future only when its request ends or polling it has failed for good,
so a thousand waiting triggers cost one task, not a thousand loops of sleep and poll.

How a round reads the states:

- **A vendor that lists request states** (``api.lists_request_states``): its listing, newest first,
  through the client's one scan (``api.scan_requests``: its page size, following the pagination the
  server gives), unfiltered (one pass gives every state), walked back while that is cheaper than
  reading the rest one by one; anything not found there is read one by one. N watched requests made
  about together cost about N / page size calls per interval, in one short burst per round.
- **Everything else**: one GET per watched request per interval,
  each request on its own schedule whose first poll falls at random within the interval (so a
  thousand triggers deferring together do not poll together), at most
  :data:`MAX_CONCURRENT_POLLS` at a time.

Every call waits on the connection's :class:`~airflow_provider_edgeinfer.clients.retry.RateLimiter`
(the one of its shared client, which batch watching of that connection waits on too): a 429 pauses
the whole connection for its ``Retry-After``. A 429 never counts against a trigger's
failure tolerance: it says nothing about the request, and the trigger's deadline still bounds the wait.

The poller lives exactly as long as some trigger watches through it: the last one to leave
(completion, cancellation, triggerer shutdown or reassignment) stops it and awaits its tasks. It
holds its own lease on the connection's shared client (taken from the first watcher's, given back
once when it stops), so the client stays open while the poller may use it, whichever watcher leaves
first, and nothing outlives the triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_edgeinfer.clients.core import Job, JobState
from airflow_provider_edgeinfer.clients.retry import DEFAULT_MAX_TRANSIENT_FAILURES, is_transient
from airflow_provider_edgeinfer.clients.transport import RateLimiter, limiter_for
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
    RateLimitError,
    error_payload,
)
from airflow_provider_edgeinfer.hooks.base import ClientLease
from airflow_provider_edgeinfer.triggers.base import EdgeInferTrigger, job_event


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
    :param end_task: when the task ends here on success (the operator's ``end_from_trigger``):
        ``{service, xcom_max_bytes, input_ref, xcom}``, what the result names and how large its XCom
        may be. On success, and only when a triggerer runs it for a task instance, the trigger reads
        the output once, builds the task's result and fires Airflow's ``TaskSuccessEvent`` with it as
        the task's XCom (``xcom``: whether to push it), so the task never goes back to a worker.
        Anything else (a failure, a timeout, an output too large for XCom, a failed read) fires the
        ordinary event: the worker finishes the task as it would without this option.
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
        "end_task",
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
        end_task: dict[str, Any] | None = None,
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
        self.end_task = end_task

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
        if self.end_task is not None and job.state is JobState.SUCCEEDED:
            ended = await self._end_task(lease, job, output_known=True)
            if ended is not None:
                return ended
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
        if self.end_task is not None and outcome.state is JobState.SUCCEEDED:
            ended = await self._end_task(lease, outcome, output_known=False)
            if ended is not None:
                return ended
        return TriggerEvent(job_event(outcome))

    async def _end_task(self, lease: ClientLease, job: Job, *, output_known: bool) -> TriggerEvent | None:
        """The task's success with its result as XCom, or None when the worker must finish the task.

        The output is read as the worker reads it (``VendorAPI.output_read``). The XComs are those
        the worker would push: the result, the request id and its link.
        """
        from airflow.triggers.base import TaskSuccessEvent

        from airflow_provider_edgeinfer.progress import VendorRequestLink, format_cost
        from airflow_provider_edgeinfer.triggers.base import build_result

        if self.task_instance is None:
            # Not run by a triggerer for a task instance (``dag.test`` runs triggers inline and resumes
            # the task with whatever they fire): only the ordinary event reaches the task.
            return None
        spec = self.end_task or {}
        client = lease.client
        service = spec.get("service") or job.service
        try:
            read = client.api.output_read(
                job.model_copy(update={"service": service}), output_known=output_known
            )
            if read is not None:
                job = await client.send(read)
            if job.state is not JobState.SUCCEEDED:
                return None
            job = job.model_copy(update={"service": service})
            result = build_result(
                job,
                job.output,
                output_path=None,
                submitted_at=self.submitted_at,
                xcom_max_bytes=int(spec.get("xcom_max_bytes", 0)),
                input_ref=spec.get("input_ref"),
            )
        except Exception as exc:
            # A worker reads it again and fails (or retries) with the whole story, as without this option.
            reason = contained(exc, self.vendor or "", "reading the result")
            self.log.info(
                "%s request %s: the task resumes on a worker (%s)", self.vendor, job.request_id, reason
            )
            return None
        self.log.info(
            "%s request %s succeeded, %s; result in XCom, the task ends here",
            self.vendor,
            job.request_id,
            format_cost(job.cost_usd),
        )
        xcoms: dict[str, Any] = {}
        if job.request_id:
            xcoms["request_id"] = job.request_id
            url = client.api.console_url(job.request_id)
            if url:
                xcoms[VendorRequestLink().xcom_key] = url
        if spec.get("xcom", True):
            xcoms["return_value"] = result
        return TaskSuccessEvent(xcoms=xcoms or None)

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


# -- the poller: one per (event loop, connection) ------------------------------------------------

log = logging.getLogger(__name__)

#: Listing pages a round may read beyond one per page size of watched requests (others' newer ones).
EXTRA_LISTING_PAGES = 1
#: 429s a listing round waits out before it gives up until the next round.
MAX_THROTTLED_PER_ROUND = 10
#: Status GETs of one connection in flight at once (also capped by its pool size).
MAX_CONCURRENT_POLLS = 16

#: What a watcher is woken with: the ended request, or the error that ended polling it.
Outcome = Job | EdgeInferError
#: A poll's answer that the request still runs, when no Job was built for it (listings).
RUNNING = None


def contained(error: Exception, vendor: str, what: str) -> EdgeInferError:
    """``error`` as it may reach a trigger event or a log line.

    The provider's own errors already carry safe messages. Anything else is named by its class
    alone: a foreign exception's text or repr may quote the request (an aiohttp error's repr holds
    its headers, the credential among them) or bytes the server chose.
    """
    if isinstance(error, EdgeInferError):
        return error
    return EdgeInferError(f"{what} failed with {type(error).__name__}", vendor=vendor)


class Watch:
    """One trigger's interest in one request; ``future`` is settled once, with its :data:`Outcome`."""

    __slots__ = ("failures", "future", "interval", "max_failures", "on_state", "request_id", "state")

    def __init__(self, request_id: str, interval: float, max_failures: int) -> None:
        self.request_id = request_id
        self.interval = interval
        self.max_failures = max_failures
        self.failures = 0
        self.future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        #: What the last poll said, in words, for the watcher's log (the vendor's state, when read).
        self.state = "waiting for the first poll"
        #: Called with :attr:`state` after every poll answer (the watcher decides what to log).
        self.on_state: Callable[[str], object] | None = None

    @property
    def open(self) -> bool:
        return not self.future.done()

    def settle(self, outcome: Outcome) -> None:
        if not self.future.done():  # a cancelled waiter leaves a cancelled future behind
            self.future.set_result(outcome)

    def record(self, outcome: Outcome | None) -> None:
        """One poll's answer about this request: settle on an end or on a failure not tolerated.

        ``None`` (:data:`RUNNING`) means the request still runs.
        """
        self._describe(outcome)
        if outcome is None or isinstance(outcome, Job):
            self.failures = 0
            if outcome is not None and outcome.terminal:
                self.settle(outcome)
            return
        self.failures += 1
        if not is_transient(outcome) or self.failures > self.max_failures:
            self.settle(outcome)

    def _describe(self, outcome: Outcome | None) -> None:
        if outcome is None:
            self.state = "not finished (listed)"
        elif isinstance(outcome, Job):
            vendor_state = f" ({outcome.vendor_state})" if outcome.vendor_state else ""
            self.state = f"{outcome.state.value}{vendor_state}"
        else:
            self.state = f"poll failed ({type(outcome).__name__}, {self.failures + 1} in a row)"
        if self.on_state is not None:
            self.on_state(self.state)


class Poller:
    """Polls every watched request of one connection on one event loop (see the module docstring)."""

    def __init__(self, key: str, lease: ClientLease, *, rng: Callable[[], float] = random.random) -> None:
        self.key = key
        #: The poller's own lease on the shared client (released once, by :meth:`stop`).
        self._leases = [lease]
        self.client = client = lease.client
        self._rng = rng
        self._watches: dict[str, list[Watch]] = {}
        self._semaphore = asyncio.Semaphore(min(MAX_CONCURRENT_POLLS, client.settings.max_connections))
        self._listing = bool(client.api.lists_request_states)
        # The per-request schedule (not used by listing rounds): (due, tie-breaker, request id).
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        #: Where each watched request was last seen in the listing (newest first).
        self._depth: dict[str, int] = {}
        #: Requests per listing page the server serves (known once a page that is not the last came).
        self._per_page: int | None = None
        self._stopping = False
        #: Listing rounds run so far (tests and metrics read it).
        self.rounds = 0
        self._task = asyncio.get_running_loop().create_task(
            self._run_rounds() if self._listing else self._run_schedule(), name=f"edgeinfer-poller:{key}"
        )
        self._task.add_done_callback(self._on_exit)

    def __repr__(self) -> str:
        return f"Poller(key={self.key!r}, watching={len(self._watches)})"

    @property
    def limiter(self) -> RateLimiter:
        """The pause of the client in use, shared with every other user of that client."""
        return limiter_for(self.client)

    @property
    def watching(self) -> int:
        return len(self._watches)

    # -- membership --------------------------------------------------------------------------

    def add(self, request_id: str, interval: float, max_failures: int) -> Watch:
        watch = Watch(request_id, interval, max_failures)
        watches = self._watches.setdefault(request_id, [])
        watches.append(watch)
        if not self._listing and len(watches) == 1:
            # The first poll falls anywhere in the interval, so triggers deferring together spread out.
            self._schedule(request_id, interval * self._rng())
        return watch

    def remove(self, watch: Watch) -> bool:
        """Forget ``watch``; True when it was the last one (the caller then stops the poller)."""
        watches = self._watches.get(watch.request_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.request_id, None)
            self._depth.pop(watch.request_id, None)
        return not self._watches

    def use(self, lease: ClientLease) -> None:
        """Poll with ``lease``'s client from now on (the one in use was closed by a shutdown)."""
        self._leases.append(lease)
        self.client = lease.client

    async def stop(self) -> None:
        self._stopping = True
        tasks = [self._task, *self._inflight]
        for task in tasks:
            task.cancel()
        try:
            # Awaited, so no task outlives the last trigger nor touches the client after its release.
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Even if this wait is cancelled: the leases go back exactly once, the client closes
            # only when no one else holds it.
            leases, self._leases = self._leases, []
            closing = [c for c in (lease.release_nowait() for lease in leases) if c is not None]
            if closing:
                await asyncio.shield(asyncio.gather(*closing, return_exceptions=True))

    def _on_exit(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        # Not stopped by the last watcher: the loop is shutting down or the poller hit a bug. Wake
        # everyone with an error rather than leave them waiting for their deadlines.
        failure = None if task.cancelled() else task.exception()
        cause = f": {type(failure).__name__}" if failure is not None else ""
        if isinstance(failure, EdgeInferError):
            cause = f": {failure}"
        error = EdgeInferError(f"the poller stopped unexpectedly{cause}", vendor=self.client.api.vendor)
        if failure is not None:
            log.error("%s poller %s stopped%s", self.client.api.vendor, self.key, cause)
        for watches in self._watches.values():
            for watch in watches:
                watch.settle(error)

    def _open_ids(self) -> list[str]:
        return [rid for rid, watches in self._watches.items() if any(w.open for w in watches)]

    def _interval(self, request_id: str) -> float:
        return min((w.interval for w in self._watches.get(request_id, ())), default=1.0)

    def _round_interval(self) -> float:
        """Listing rounds follow the most impatient watcher."""
        return min((w.interval for ws in self._watches.values() for w in ws), default=1.0)

    def _record(self, request_id: str, outcome: Outcome | None) -> None:
        for watch in self._watches.get(request_id, ()):
            watch.record(outcome)

    # -- one request at a time ---------------------------------------------------------------

    async def _fetch(self, request_id: str) -> Outcome | None:
        """One status read; None when the vendor throttled it (the limiter now holds everyone back)."""
        async with self._semaphore:
            sent_at = await self.limiter.wait()
            try:
                # One attempt: the next poll is the retry, and a 429 must pause the whole connection
                # (the limiter) rather than be retried call by call inside the client.
                job: Job = await self.client.send_once(self.client.api.status(request_id))
            except RateLimitError as exc:
                self.limiter.throttled(exc.retry_after, sent_at=sent_at)
                return None
            except Exception as exc:
                error = contained(exc, self.client.api.vendor, f"polling request {request_id}")
                log.warning("%s request %s: poll failed: %s", self.client.api.vendor, request_id, error)
                return error
        self.limiter.succeeded()
        return job

    async def _poll_one(self, request_id: str) -> None:
        outcome = await self._fetch(request_id)
        if outcome is not None:
            self._record(request_id, outcome)

    def _schedule(self, request_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        heapq.heappush(self._due, (loop.time() + delay, next(self._order), request_id))
        self._wake.set()

    async def _polled_then_rescheduled(self, request_id: str) -> None:
        try:
            await self._poll_one(request_id)
        finally:
            if request_id in self._watches and not self._stopping:
                self._schedule(request_id, self._interval(request_id))

    def _poll_done(self, task: asyncio.Task[None]) -> None:
        """Retrieve a poll task's end, so asyncio never logs an exception's repr as "never retrieved"."""
        self._inflight.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            log.error(
                "%s poller %s: a poll failed with %s",
                self.client.api.vendor,
                self.key,
                type(failure).__name__,
            )

    async def _run_schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._due and self._due[0][0] <= now:
                _, _, request_id = heapq.heappop(self._due)
                if request_id not in self._watches:
                    continue  # its triggers left
                task = loop.create_task(self._polled_then_rescheduled(request_id))
                self._inflight.add(task)
                task.add_done_callback(self._poll_done)
            self._wake.clear()
            delay = self._due[0][0] - now if self._due else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # -- a listing of request states ----------------------------------------------------------

    async def _run_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._round()
            await asyncio.sleep(max(0.0, started + self._round_interval() - loop.time()))

    async def _round(self) -> None:
        api = self.client.api
        self.rounds += 1
        wanted = set(self._open_ids())
        # Watchers give no submission times: a round's walk ends by cost (_worth_walking), not by age.
        scan = api.scan_requests(-math.inf)
        per_page = self._per_page or scan.page_size
        budget = math.ceil(len(wanted) / per_page) + EXTRA_LISTING_PAGES
        call = scan.next_call
        pages = offset = throttled = 0
        while call is not None and wanted and self._worth_walking(wanted, pages, offset, budget, per_page):
            sent_at = await self.limiter.wait()
            try:
                page = await self.client.send_once(call)
            except RateLimitError as exc:
                self.limiter.throttled(exc.retry_after, sent_at=sent_at)
                throttled += 1
                if throttled >= MAX_THROTTLED_PER_ROUND:
                    return
                continue
            except Exception as exc:
                # The listing failed: one failed poll for every request it would have answered.
                error = contained(exc, api.vendor, "listing requests")
                log.warning("%s: listing requests failed (%d watched): %s", api.vendor, len(wanted), error)
                for request_id in wanted:
                    self._record(request_id, error)
                return
            self.limiter.succeeded()
            pages += 1
            if page.next_call is not None and page.items:
                # Not the last page: what the server serves per page, whatever was asked.
                self._per_page = per_page = len(page.items)
            for position, request in enumerate(scan.take(page), start=offset):
                request_id = request.id
                if request_id not in wanted:
                    continue
                wanted.discard(request_id)
                self._depth[request_id] = position
                try:
                    ended = api.job_if_ended(request)  # validates only the requests that ended
                except EdgeInferError as exc:
                    self._record(request_id, exc)
                    continue
                self._record(request_id, RUNNING if ended is None else ended)
            offset += len(page.items)
            call = scan.next_call
        # Not worth a page (a few old ones), past the budget or in no listing (another project's).
        await asyncio.gather(*(self._poll_one(request_id) for request_id in wanted))

    def _worth_walking(self, wanted: set[str], pages: int, offset: int, budget: int, per_page: int) -> bool:
        """Whether to read one more listing page rather than read the ``wanted`` ones by one.

        Requests seen before are expected near the depth they had (newer ones only push them
        deeper): walk on while reaching the deepest costs no more pages than there are requests
        left. Requests never seen in a listing (just joined) are looked for within ``budget`` pages.
        """
        if pages == 0:
            return True
        depths = [self._depth.get(rid, -1) for rid in wanted]
        if min(depths) < 0 and pages < budget:
            return True
        deepest = max(depths)
        return deepest >= 0 and max(1, math.ceil((deepest + 1 - offset) / per_page)) <= len(wanted)


class _Pollers:
    """The registry: one :class:`Poller` per (event loop, connection key)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Poller]] = (
            weakref.WeakKeyDictionary()
        )

    def _table(self) -> dict[str, Poller]:
        return self._by_loop.setdefault(asyncio.get_running_loop(), {})

    def join(self, key: str, lease: ClientLease) -> Poller:
        """The poller of ``key``, started with a lease of its own (from ``lease``) if there is none."""
        table = self._table()
        poller = table.get(key)
        if poller is None:
            poller = table[key] = Poller(key, lease.another())
        elif poller.client.closed and poller.client is not lease.client:
            # Only a shutdown (close_all) closes a leased client, and a fresh one was handed out: use it.
            poller.use(lease.another())
        return poller

    async def leave(self, poller: Poller, watch: Watch) -> None:
        if poller.remove(watch):
            table = self._table()
            if table.get(poller.key) is poller:
                del table[poller.key]  # at once, so a trigger joining meanwhile starts a new poller
            await poller.stop()

    def get(self, key: str) -> Poller | None:
        return self._table().get(key)

    def active(self) -> int:
        """Pollers running on this loop (tests assert none outlive their triggers)."""
        return len(self._table())


pollers = _Pollers()


@contextlib.asynccontextmanager
async def watch(
    key: str, lease: ClientLease, request_id: str, *, interval: float, max_failures: int
) -> AsyncIterator[Watch]:
    """Watch ``request_id`` through the connection's poller while the block runs.

    ``lease`` is the caller's, held for the whole block; a poller started here takes its own.
    """
    poller = pollers.join(key, lease)
    entry = poller.add(request_id, interval, max_failures)
    try:
        yield entry
    finally:
        await pollers.leave(poller, entry)


__all__ = [
    "DEFAULT_MAX_TRANSIENT_FAILURES",
    "InferenceTrigger",
    "Outcome",
    "Poller",
    "Watch",
    "contained",
    "is_transient",
    "pollers",
    "watch",
]
