"""The batch state machine: rounds of submissions, their watching, and the results.

:class:`BatchRun` takes a task's :class:`BatchSpec` and its hook. :meth:`BatchRun.start` opens the
inputs and the manifest, checks every input, and runs the current round: a native batch
(:mod:`.native`), or a fan-out (:mod:`.fanout`). It returns either a :class:`Wait` (the round runs
remotely: watch it, in the triggerer or on the worker) or the finished task's result.
:meth:`BatchRun.resume` takes the watch's event: it writes the results (:mod:`.results`), or starts
the next round of transient failures (``item_retries``), returning a :class:`Wait` again.

Every step is recorded in the manifest (:mod:`.manifest`) before it is taken, so a retried task
resumes where the last one stopped and never pays twice. The operator only drives this machine.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.batch.index import ERR_TRANSIENT, NONE
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    naming_vendor,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_edgeinfer.batch.fanout import FanOutStats
    from airflow_provider_edgeinfer.batch.index import ItemStates
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.batch.manifest import Header, Manifest, NativePart, Round
    from airflow_provider_edgeinfer.clients.transport import HttpSettings, RateLimiter
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: Event statuses a watch ends with (:class:`~.watch.Ended`).
EVENT_STATUSES = ("success", "cancelled", "timeout", "error")


@dataclass(frozen=True)
class BatchSpec:
    """What the task asked for (the operator's arguments, rendered and checked)."""

    conn_id: str
    service: str
    inputs: Any
    output_path: Any
    prediction: str | None = None
    file_field: str | None = None
    file_input: dict[str, Any] | None = None
    max_concurrency: int = 16
    max_failed_ratio: float = 0.0
    item_retries: int = 0
    poll_interval: float = 30.0
    timeout: float = 24 * 3600.0
    cancel_on_kill: bool = True
    max_cost_usd: float | str | None = None
    retention_days: float | None = None
    export_format: str | None = None
    batch_timeout: str | None = None
    resubmit_on_unknown_outcome: bool = False
    source_conn_id: str | None = None
    output_conn_id: str | None = None
    max_transient_failures: int = 5
    vendor_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait:
    """The current round runs remotely: watch ``batch_id`` (native) or ``output_path``'s manifest."""

    round: int
    deadline: float
    batch_id: str | None = None
    output_path: str | None = None


class BatchRun:
    """One task's batch. ``on_written(output_dir)`` is told once the results files are written (or
    found written by an earlier try with the same inputs);
    ``on_page(url)`` the vendor's page of each round's batch (None where the vendor has none)."""

    def __init__(
        self,
        spec: BatchSpec,
        hook: EdgeInferHook,
        *,
        log: logging.Logger | Any = None,
        on_written: Callable[[ObjectStoragePath], None] | None = None,
        on_page: Callable[[str | None], None] | None = None,
    ) -> None:
        self.spec = spec
        self.hook = hook
        self.log = log or logging.getLogger("airflow_provider_edgeinfer.batch")
        self.on_written = on_written
        self.on_page = on_page or (lambda url: None)
        #: The output directory, manifest and items, once opened (on the worker they stay loaded).
        self._opened: tuple[ObjectStoragePath, Manifest, Items] | None = None

    # -- setup ---------------------------------------------------------------------------------

    def _open(self) -> tuple[ObjectStoragePath, Manifest, Items]:
        if self._opened is not None:
            return self._opened
        from airflow_provider_edgeinfer.batch.inputs import is_files, open_items
        from airflow_provider_edgeinfer.batch.manifest import Manifest
        from airflow_provider_edgeinfer.outputs import prepare_output_dir

        spec, hook = self.spec, self.hook
        if not spec.service:
            raise ConfigurationError("service is empty", vendor=hook.vendor)
        output_dir = prepare_output_dir(spec.output_path, hook.vendor, spec.output_conn_id)
        manifest = Manifest(output_dir)
        sources = None
        if is_files(spec.inputs, spec.file_field):
            header = manifest.read_header()
            if header is not None and header.outcome is None:
                # A running batch keeps the files its glob matched when it started.
                sources = manifest.read_sources()
        with naming_vendor(hook.vendor):
            items = open_items(
                spec.inputs,
                file_field=spec.file_field,
                sources=sources,
                conn_id=spec.source_conn_id,
                file_input=spec.file_input,
            )
        self._opened = (output_dir, manifest, items)
        return self._opened

    def budget(self) -> float | None:
        if self.spec.max_cost_usd is None or self.spec.max_cost_usd == "":
            return None
        from airflow_provider_edgeinfer.arguments import finite

        # Templated, so only known once rendered; checked before anything is sent.
        try:
            return finite("max_cost_usd", self.spec.max_cost_usd, minimum=0)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    def _inline(self) -> bool:
        """Whether each item's file travels inside its own call (a native batch's JSON cannot carry it)."""
        from airflow_provider_edgeinfer.batch.inputs import is_files

        spec = self.spec
        return is_files(spec.inputs, spec.file_field) and self.hook.api.takes_files_inline(spec.service)

    def _mode(self) -> str:
        api = self.hook.api
        if api.runs_native_batches and not self._inline():
            return "native"
        return "sync" if api.answers_in_call(self.spec.service) else "fanout"

    def _check(self, items: Items, mode: str, *, validate_each: bool = True) -> str:
        """Every input checked locally before anything is sent (and paid for), in one pass that also
        counts the items and computes the batch's fingerprint (returned). ``validate_each=False``
        skips the vendor's check of each input (a resumed batch's were checked when it started)."""
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        spec, hook = self.spec, self.hook
        with naming_vendor(hook.vendor):
            budget = self.budget()
        if budget is not None and mode != "native":
            raise ConfigurationError(
                f"max_cost_usd needs a vendor that estimates cost before submitting; {hook.vendor} does not",
                vendor=hook.vendor,
                hint="Use a connection whose vendor runs native batches, or drop max_cost_usd.",
            )
        if spec.file_field and items.has_files:
            from airflow_provider_edgeinfer.sources import require_file_inputs

            require_file_inputs(hook, spec.service, [spec.file_field])
        identity = (hook.vendor, spec.service, spec.prediction)
        if mode == "native" or not validate_each:
            if mode == "native":
                hook.check_native_batch_service(spec.service)
            with naming_vendor(hook.vendor):
                return items.check(identity)

        def validate(item: BatchItem) -> None:
            checked = self._stand_in(item).input
            try:
                hook.validate_submission(spec.service, spec.prediction, checked, **spec.vendor_options)
            except InputValidationError as exc:
                raise InputValidationError(
                    f"item {item.custom_id!r} ({item.ref}): {exc.message}", vendor=hook.vendor
                ) from None

        with naming_vendor(hook.vendor):
            return items.check(identity, validate)

    def _header(
        self, manifest: Manifest, items: Items, mode: str, fp: str, digest: str | None = None
    ) -> Header:
        from airflow_provider_edgeinfer.batch import rerun
        from airflow_provider_edgeinfer.batch.manifest import Header, Round

        spec, hook = self.spec, self.hook
        header = manifest.read_header()
        kept: list[int] = []
        if header is not None and header.fingerprint != fp:
            if header.outcome is None and manifest.has_submissions(header):
                raise ConfigurationError(
                    f"output_path {manifest.output_dir} holds an unfinished batch with other inputs",
                    vendor=hook.vendor,
                    hint="Use a new output_path per batch (e.g. template it with {{ ds }}).",
                )
            if header.outcome is not None:
                # Its results are written: items unchanged since, and done, keep theirs.
                kept = rerun.keep_succeeded(manifest, items)
            header = None
        elif header is not None and header.outcome == "succeeded":
            self.log.info(
                "the batch in %s already succeeded with these inputs: nothing is sent or rewritten "
                "(for a new, paid run use a new output_path)",
                manifest.output_dir,
            )
            return header
        if header is None:
            manifest.reset()
            if not kept:
                rerun.clear_kept(manifest)
            now = time.time()
            keep = set(kept)
            changed = [item.index for item in items if item.index not in keep] if kept else None
            header = Header(
                fingerprint=fp,
                vendor=hook.vendor,
                service=spec.service,
                prediction=spec.prediction,
                mode=mode,  # type: ignore[arg-type]
                total=len(items),
                created_at=now,
                rounds=[Round(number=0, started_at=now, indices=changed)],
                inputs_digest=digest,
            )
            if items.has_files:
                manifest.write_sources(items.sources())
            rerun.write_items(manifest, items)
            manifest.write_header(header)
            if kept:
                self.log.info(
                    "the inputs changed since the batch in %s ran: keeping %d results, submitting %d items",
                    manifest.output_dir,
                    len(kept),
                    len(items) - len(kept),
                )
        elif header.outcome == "failed":
            retry = self._failed_indices(manifest, header, items)
            self.log.info("the previous try of this batch failed: resubmitting %d failed items", len(retry))
            if retry:
                self._new_round(manifest, header, retry)
        else:
            self.log.info("resuming the batch in %s (round %d)", manifest.output_dir, header.current.number)
        return header

    def _earlier_summary(self, manifest: Manifest, header: Header) -> dict[str, Any]:
        from airflow_provider_edgeinfer.batch import rerun

        summary = rerun.read_summary(manifest)
        if summary is None:  # finished by a release that kept no summary: count its results
            summary = {
                "vendor": self.hook.vendor,
                "service": self.spec.service,
                "mode": header.mode,
                **rerun.count_results(manifest),
                "rounds": len(header.rounds),
                "output_path": str(manifest.output_dir),
                "manifest_path": str(manifest.directory),
            }
        return summary

    # -- rounds --------------------------------------------------------------------------------

    def start(self, context: Context) -> Wait | dict[str, Any]:
        """Open, check and run the current round (a new batch, or the one a previous try left)."""
        _, manifest, items = self._open()
        mode = self._mode()
        previous = manifest.read_header()
        # A running batch's inputs were checked when it started: if the fingerprint shows the same
        # inputs, a resumed try goes straight to what is left (a million checks take tens of seconds).
        resuming = previous is not None and previous.outcome is None and previous.mode == mode
        identity = (self.hook.vendor, self.spec.service, self.spec.prediction)
        digest = items.raw_digest(identity)
        if resuming and previous is not None and digest is not None and digest == previous.inputs_digest:
            # The very bytes the batch started from: its items were checked then.
            items.trust(previous.total)
            fp = previous.fingerprint
        else:
            fp = self._check(items, mode, validate_each=not resuming)
            if resuming and previous is not None and fp != previous.fingerprint:
                self._check(items, mode)
        header = self._header(manifest, items, mode, fp, digest)
        if header.outcome == "succeeded":
            summary = self._earlier_summary(manifest, header)
            # Sending and rewriting nothing is not succeeding silently: this try's success is the one
            # Airflow records (the try that wrote the results may have died before reporting it), so
            # the output is announced again, as any task with outlets announces them on success.
            if self.on_written is not None:
                self.on_written(manifest.output_dir)
            return summary
        if header.current.indices == []:  # every item kept from the batch before: nothing to send
            return self._finish(manifest, header, items, "success")
        return self._run_round(context, manifest, header, items)

    def _run_round(
        self, context: Context, manifest: Manifest, header: Header, items: Items
    ) -> Wait | dict[str, Any]:
        spec = self.spec
        deadline = header.current.started_at + spec.timeout
        if header.mode == "native":
            wait = self._native_round(context, manifest, header, items)
            batch_ids = header.current.batch_ids
            self.on_page(self.hook.api.batch_console_url(wait.batch_id or next(iter(batch_ids), None)))
            return wait
        self.on_page(self.hook.api.batch_console_url(None))
        self._fanout_round(manifest, header, items)
        if header.mode == "sync":
            # The fan-out was the inference: each round is over when it returns.
            while header.current.number < spec.item_retries:
                retry = self._failed_indices(manifest, header, items)
                if not retry:
                    break
                self.log.info(
                    "round %d: sending %d transiently failed items again", header.current.number, len(retry)
                )
                time.sleep(spec.poll_interval)  # the vendor refused them just now: give it a breath
                self._new_round(manifest, header, retry)
                self._fanout_round(manifest, header, items)
            return self._finish(manifest, header, items, "success")
        return Wait(header.current.number, deadline, output_path=str(manifest.output_dir))

    def _native_round(self, context: Context, manifest: Manifest, header: Header, items: Items) -> Wait:
        """Submit the round's native batch (or, above the vendor's size, its batches), each once."""
        from airflow_provider_edgeinfer.batch import native
        from airflow_provider_edgeinfer.batch.manifest import NativePart
        from airflow_provider_edgeinfer.progress import usd

        spec, hook = self.spec, self.hook
        current = header.current
        deadline = current.started_at + spec.timeout
        chosen = current.indices if current.indices is not None else range(len(items))
        parts = native.split(len(chosen))
        if len(parts) > 1 and not current.parts and current.batch_id is None:
            current.parts = [NativePart(start=start, count=count) for start, count in parts]
            manifest.write_header(header)
        submitted = all(p.batch_id for p in current.parts) if current.parts else current.batch_id is not None
        if submitted:
            self.log.info(
                "reattaching to %s batch %s (round %d)",
                hook.vendor,
                ", ".join(current.batch_ids),
                current.number,
            )
            return self._native_wait(manifest, header, deadline)
        budget = self.budget()
        if budget is not None and not current.batch_ids:
            each = self._parts_items(items, chosen, parts)
            estimate = native.check_budget(hook, spec.service, each, budget)
            if estimate is not None:
                self.log.info("estimated cost %s is within max_cost_usd %s", usd(estimate), usd(budget))
        if not current.parts:
            (only,) = self._parts_items(items, chosen, [(0, len(chosen))])
            self._submit_part(context, manifest, header, current, only, budget)
        unsent = [(number, part) for number, part in enumerate(current.parts) if part.batch_id is None]
        # One pass over the inputs for every part still to send (a resumed round skips the sent ones'
        # lines undecoded), one part's items in memory at a time.
        each = self._parts_items(items, chosen, [(part.start, part.count) for _, part in unsent])
        for (number, part), part_items in zip(unsent, each, strict=True):
            self._submit_part(context, manifest, header, part, part_items, budget, number)
        return self._native_wait(manifest, header, deadline)

    def _native_wait(self, manifest: Manifest, header: Header, deadline: float) -> Wait:
        current = header.current
        if current.parts:  # several batches: the watch reads their ids from the manifest
            return Wait(current.number, deadline, output_path=str(manifest.output_dir))
        return Wait(current.number, deadline, batch_id=current.batch_id)

    @staticmethod
    def _parts_items(
        items: Items, chosen: Sequence[int], parts: Sequence[tuple[int, int]]
    ) -> Iterator[list[BatchItem]]:
        """The items of each part (positions ``start .. start+count`` of the round's ``chosen``
        indices, in increasing order), part by part, from one pass over the inputs."""
        spans = [(chosen[start], chosen[start + count - 1]) if count else (0, -1) for start, count in parts]
        wanted: set[int] | None = None
        if not isinstance(chosen, range):
            wanted = {i for start, count in parts for i in chosen[start : start + count]}
        starts = [first for first, _ in spans]

        def in_a_part(index: int) -> bool:
            at = bisect.bisect_right(starts, index) - 1
            return at >= 0 and index <= spans[at][1] and (wanted is None or index in wanted)

        stream = items.select(in_a_part)
        ahead: BatchItem | None = None  # read past the end of the part before
        for _, last in spans:
            batch: list[BatchItem] = []
            if ahead is not None and ahead.index <= last:
                batch.append(ahead)
                ahead = None
            while ahead is None and not (batch and batch[-1].index >= last):
                item = next(stream, None)
                if item is None:
                    break
                if item.index > last:
                    ahead = item
                else:
                    batch.append(item)
            yield batch

    def _submit_part(
        self,
        context: Context,
        manifest: Manifest,
        header: Header,
        part: Round | NativePart,
        chosen: list[BatchItem],
        budget: float | None,
        number: int | None = None,
    ) -> None:
        """Submit one native batch: its key is recorded before, its id after (never pay twice)."""
        from airflow_provider_edgeinfer.batch import native
        from airflow_provider_edgeinfer.clients.core import idempotency_key
        from airflow_provider_edgeinfer.progress import format_cost

        spec, hook = self.spec, self.hook
        current = header.current
        if part.key is None:
            # Intent: written before the submit, so a retry repeats it with the same key.
            suffix = "" if number is None else f":{number}"
            part.key = idempotency_key(context, f"batch:{header.fingerprint}:{current.number}{suffix}")
            manifest.write_header(header)
        metadata: dict[str, Any] = {
            "fingerprint": header.fingerprint,
            "round": current.number,
            "source": "edgeinfer",
        }
        if number is not None:
            metadata["part"] = number
        batch_id, estimate = native.submit(
            hook, spec.service, chosen, key=part.key, metadata=metadata, batch_timeout=spec.batch_timeout
        )
        part.batch_id = batch_id
        manifest.write_header(header)
        self.log.info(
            "submitted %s batch %s with %d items (estimated %s)",
            hook.vendor,
            batch_id,
            len(chosen),
            format_cost(estimate),
        )
        native.over_budget_after_submit(hook, batch_id, estimate, budget)
        if spec.retention_days is not None:
            hook.run(hook.api.batch_set_retention(batch_id, spec.retention_days))

    def _fanout_round(self, manifest: Manifest, header: Header, items: Items) -> None:
        """Send every item of the round the manifest does not show as sent, streaming the items."""
        current = header.current
        total = len(items)
        chosen = None if current.indices is None else frozenset(current.indices)
        for attempt in range(3):
            states = manifest.states(total)
            self._settle_unknown(manifest, header, states)

            def wanted(index: int, states: ItemStates = states) -> bool:
                return (chosen is None or index in chosen) and _needs_sending(states, index, current.number)

            count = sum(1 for index in range(total) if wanted(index))
            if not count:
                break
            in_round = total if chosen is None else len(chosen)
            if attempt == 0 and count < in_round:
                self.log.info(
                    "resuming: %d of %d items already submitted, submitting the %d missing",
                    in_round - count,
                    in_round,
                    count,
                )
            started = time.monotonic()
            uploads = items.has_files and not self._inline()
            # The first item is built here, off the fan-out's loop: an object store's first path
            # creates its filesystem, and s3fs's runs an event loop of its own, which it cannot
            # from inside another (a resumed glob batch, which builds no path before, failed so).
            selected = items.select(wanted)
            first = next(selected, None)
            ahead = selected if first is None else itertools.chain([first], selected)
            stats = asyncio.run(self._fan_out(manifest, ahead, count, current.number, uploads=uploads))
            current.submitted += stats.sent
            current.submit_seconds += time.monotonic() - started
            manifest.write_header(header)
            self.log.info(
                "round %d: %d submitted, %d refused, %d answers lost, %.0f submissions/s",
                current.number,
                stats.sent,
                stats.failed,
                stats.unknown,
                stats.sent / max(1e-6, time.monotonic() - started),
            )
            if not stats.unknown:
                break
        manifest.compact(total)

    def _settle_unknown(self, manifest: Manifest, header: Header, states: ItemStates) -> None:
        """Items sent whose answer was lost: find them at the vendor, or decide what they become.

        What is decided is written to the journal and applied to ``states``. Only the (few) lost
        items' records are read whole.
        """
        from airflow_provider_edgeinfer.batch.fanout import resolve_unknown
        from airflow_provider_edgeinfer.batch.index import INTENT
        from airflow_provider_edgeinfer.batch.manifest import ItemRecord, state_code

        spec, hook = self.spec, self.hook
        lost_indices = set(states.indices({INTENT}, round=header.current.number))
        if not lost_indices:
            return
        # One pass over the journal: the lost items' latest records, and every request id it holds
        # (earlier rounds' too, so that none is taken for a lost one).
        unknown, known = manifest.latest_of(states, lost_indices)
        found, searched = resolve_unknown(hook, spec.service, spec.prediction, unknown, known)
        now = time.time()
        out: list[tuple[int, ItemRecord]] = []
        for index, record in unknown.items():
            if index in found:
                out.append((index, ItemRecord("sub", record.round, found[index], record.at or now)))
            elif searched or spec.resubmit_on_unknown_outcome:
                # Not at the vendor (or the user accepts the risk): a new intent marks it for sending.
                lost = {"type": "OutcomeUnknownError", "message": "resubmitted after a lost answer"}
                out.append((index, ItemRecord("err", record.round, at=now, error=lost, transient=True)))
        self.log.info(
            "%d submissions had lost answers: %d found at %s, %d to resubmit, %d unresolved",
            len(unknown),
            len(found),
            hook.vendor,
            sum(1 for _, r in out if r.kind == "err"),
            len(unknown) - len(out),
        )
        manifest.write_segment(out)
        # What the journal now says, without reading it again (records replay in any order alike).
        for index, record in out:
            states.apply(index, state_code(record), record.round)

    def _stand_in(self, item: BatchItem) -> BatchItem:
        """The item as checked before its file is sent: a name for an upload not made yet, or an
        empty file for one read just before its call."""
        field_ = self.spec.file_field
        if item.source is None or not field_:
            return item
        from dataclasses import replace

        from airflow_provider_edgeinfer.clients.core import InlineFile

        name = item.source.rsplit("/", 1)[-1]
        stand_in = InlineFile(name, b"") if self._inline() else f"upload-of-{field_}"
        return replace(item, input={**item.input, field_: stand_in})

    def _inline_reader(self) -> Callable[[BatchItem], Awaitable[BatchItem]] | None:
        """Reads an item's file just before its call, in a thread: at most one file per sender in memory."""
        if not self._inline():
            return None
        from dataclasses import replace

        from airflow_provider_edgeinfer.sources import read_inline
        from airflow_provider_edgeinfer.storage import as_storage_path

        hook, service, field_ = self.hook, self.spec.service, str(self.spec.file_field)
        conn_id = self.spec.source_conn_id

        async def read(item: BatchItem) -> BatchItem:
            if item.source is None:
                return item
            path = as_storage_path(item.source, "source", conn_id=conn_id)
            content = await asyncio.to_thread(read_inline, hook, service, field_, path)
            return replace(item, input={**item.input, field_: content})

        return read

    def _uploader(
        self, client: Any, vendor_limiter: RateLimiter, settings: HttpSettings, deadline: float
    ) -> Callable[[BatchItem], Awaitable[BatchItem]]:
        """Uploads an item's file just before its call, on the fan-out's event loop and client.

        Each sender uploads its item's file, then submits it: uploads and submissions overlap, and
        no more files are in flight than there are senders. The presigned URL is asked for through
        the vendor's pause (a 429 there holds every sender); the store's answers have a pause of
        their own, so a slow store does not hold submissions of files already uploaded.
        """
        from dataclasses import replace
        from functools import partial

        from airflow_provider_edgeinfer.clients.presigned import transfer_async
        from airflow_provider_edgeinfer.clients.retry import PacedSender
        from airflow_provider_edgeinfer.clients.transport import RateLimiter
        from airflow_provider_edgeinfer.sources import require_upload_kind, upload_source

        spec, hook, field_ = self.spec, self.hook, str(self.spec.file_field)
        require_upload_kind(hook, "input", field_)
        hook.check_upload_field(spec.service, spec.prediction, field_)
        to_vendor = PacedSender(client.send, vendor_limiter, settings.retry, deadline=deadline)
        to_store = PacedSender(client.send, RateLimiter(), settings.retry, deadline=deadline)
        presign_call = partial(hook.api.presign_input, spec.service, spec.prediction, field_)

        async def presign() -> Any:
            return await to_vendor.send(presign_call())

        async def upload(item: BatchItem) -> BatchItem:
            if item.source is None:
                return item
            # The listed size: the store is asked only for the file's bytes (one GET).
            source = upload_source(item.source, item.size, conn_id=spec.source_conn_id)
            name = await transfer_async(
                to_store.send, presign, source, vendor=hook.vendor, field=field_, logger=self.log
            )
            return replace(item, input={**item.input, field_: name})

        return upload

    async def _fan_out(
        self,
        manifest: Manifest,
        items: Iterator[BatchItem],
        total: int,
        round_number: int,
        *,
        uploads: bool = False,
    ) -> FanOutStats:
        """Send ``items``; with ``uploads``, each item's file is uploaded by its sender first."""
        from contextlib import AsyncExitStack

        from airflow_provider_edgeinfer.batch.fanout import FanOut, FanOutStats, sender_for, single_attempt
        from airflow_provider_edgeinfer.batch.manifest import JournalWriter
        from airflow_provider_edgeinfer.clients.transport import RateLimiter

        spec, hook = self.spec, self.hook
        first = next(items, None)
        if first is None:
            return FanOutStats()
        conn = hook.connection
        settings = hook.http_settings(conn)
        header = manifest.read_header()
        started = header.current.started_at if header is not None else time.time()
        probe = hook.api.submit(
            spec.service, self._stand_in(first).input, prediction=spec.prediction, **spec.vendor_options
        )
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                sender_for(
                    hook.api, hook.credentials(conn), single_attempt(settings, spec.max_concurrency), probe
                )
            )
            writer = await stack.enter_async_context(JournalWriter(manifest))
            limiter, deadline = RateLimiter(), started + spec.timeout
            prepare = self._inline_reader()
            if uploads:
                # The connection's retry policy: the client sends each call once, the uploader's
                # paced senders retry (a dropped PUT or a 5xx is sent again, not failed).
                prepare = self._uploader(client, limiter, settings, deadline)
            fan_out = FanOut(
                api=hook.api,
                client=client,
                writer=writer,
                service=spec.service,
                prediction=spec.prediction,
                round=round_number,
                concurrency=spec.max_concurrency,
                deadline=deadline,
                settings=settings,
                vendor_options=spec.vendor_options,
                prepare=prepare,
                limiter=limiter,
            )
            return await fan_out.run(itertools.chain([first], items), total)

    # -- after a watch -------------------------------------------------------------------------

    def resume(self, context: Context, event: dict[str, Any] | None) -> Wait | dict[str, Any]:
        """The watch of the current round ended with ``event``: results, or the next round."""
        from airflow_provider_edgeinfer.exceptions import (
            EdgeInferError,
            ErrorPayload,
            UnexpectedResponseError,
            rebuild_error,
        )

        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise UnexpectedResponseError("the batch trigger sent an event this operator does not understand")
        output_dir, manifest, items = self._open()
        header = manifest.read_header()
        if header is None:
            raise ConfigurationError(f"the batch manifest in {output_dir} disappeared while the batch ran")
        if items.total is None:
            # A fresh worker after deferring: the header counted the items (checked when it started).
            items.total = header.total
        status = event["status"]
        if status == "error":
            error = event.get("error")
            raise (
                rebuild_error(ErrorPayload.model_validate(error))
                if error
                else EdgeInferError("batch poll failed")
            )
        if status == "timeout":
            self._cancel(header, manifest)
            return self._finish(manifest, header, items, "timeout")
        if (
            status == "success"
            and header.current.number < self.spec.item_retries
            and (event.get("counts") or {}).get("failed")
        ):
            retry = self._failed_indices(manifest, header, items)
            if retry:
                self.log.info(
                    "round %d: resubmitting %d transiently failed items", header.current.number, len(retry)
                )
                self._new_round(manifest, header, retry)
                return self._run_round(context, manifest, header, items)
        return self._finish(manifest, header, items, status)

    def _new_round(self, manifest: Manifest, header: Header, indices: list[int]) -> None:
        from airflow_provider_edgeinfer.batch.manifest import Round

        header.rounds.append(Round(number=header.current.number + 1, started_at=time.time(), indices=indices))
        header.outcome = None
        manifest.write_header(header)

    def _failed_indices(self, manifest: Manifest, header: Header, items: Items) -> list[int]:
        """Items worth another round: failed for a reason other than their input (or a lost answer)."""
        from airflow_provider_edgeinfer.batch import results

        if header.mode == "native":
            out: set[int] = set()
            for batch_round in header.rounds:
                for batch_id, positions in batch_round.native_batches(len(items)):
                    out.difference_update(positions)
                    out.update(results.native_retryable(self.hook, batch_id, positions))
            return sorted(out)
        return results.fanout_retryable(self.hook, self.spec.service, manifest, len(items))

    def _cancel(self, header: Header, manifest: Manifest) -> None:
        """Timeout: cancel the native batch, or every unfinished request of the fan-out."""
        if not self.spec.cancel_on_kill:
            return
        from airflow_provider_edgeinfer.batch.watch import cancel_batch, load_watch
        from airflow_provider_edgeinfer.clients.transport import AsyncClient

        hook = self.hook

        async def cancel() -> None:
            conn = hook.connection
            client: AsyncClient[Any] = AsyncClient(hook.api, hook.credentials(conn), hook.http_settings(conn))
            try:
                watch = load_watch(str(manifest.output_dir), header.current.number, 16)
                if header.mode != "native":
                    await watch.poll(client)  # only still-unfinished requests are cancelled
                await cancel_batch(client, None, watch, self.log)
            finally:
                await client.aclose()

        try:
            asyncio.run(cancel())
        except Exception as exc:  # the results still get written; the task fails on the timeout anyway
            self.log.warning("could not cancel the batch after its timeout: %s", exc)

    def _finish(self, manifest: Manifest, header: Header, items: Items, status: str) -> dict[str, Any]:
        from airflow_provider_edgeinfer.batch import native, results
        from airflow_provider_edgeinfer.progress import format_total

        spec, hook = self.spec, self.hook
        output_dir = manifest.output_dir
        unfinished = (
            "the batch timed out before this request finished"
            if status == "timeout"
            else "the request had not finished when the batch ended"
        )
        from airflow_provider_edgeinfer.batch import rerun

        kept = rerun.read_kept(manifest)
        with rerun.KeepingWriter(output_dir, len(items), items=items, kept=kept) as writer:
            if header.mode == "native":
                results.write_native(hook, header, items, len(items), writer)
            else:
                results.write_fanout(
                    hook,
                    spec.service,
                    items,
                    manifest,
                    len(items),
                    writer,
                    concurrency=min(spec.max_concurrency, results.MAX_FETCH_THREADS),
                    unfinished_error=unfinished,
                )
        summary = writer.summary
        result: dict[str, Any] = {
            "vendor": hook.vendor,
            "service": spec.service,
            "mode": header.mode,
            "total": summary.total,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            # Only stated costs are summed: a total of unknown costs is unknown, and they are counted.
            "cost_usd": None if summary.cost_usd is None else round(summary.cost_usd, 8),
            "items_without_cost": summary.items_without_cost,
            "rounds": len(header.rounds),
            "output_path": str(output_dir),
            "results_path": str(output_dir / results.RESULTS),
            "failures_path": str(output_dir / results.FAILURES),
            "media_files": summary.files,
            "manifest_path": str(manifest.directory),
        }
        if header.mode == "native":
            result["batch_ids"] = [batch_id for r in header.rounds for batch_id in r.batch_ids]
            exported = header.current.batch_ids
            if spec.export_format and exported:
                # One export per native batch of the round: export.<fmt>, then export-1.<fmt>, ...
                paths = [
                    native.export(hook, batch_id, spec.export_format, output_dir, part=number)
                    for number, batch_id in enumerate(exported)
                ]
                result["export_path"] = paths[0]
                if len(paths) > 1:
                    result["export_paths"] = paths
        if self.on_written is not None:
            self.on_written(output_dir)
        ratio = summary.failed / summary.total if summary.total else 0.0
        ok = status == "success" and ratio <= spec.max_failed_ratio
        header.outcome = "succeeded" if ok else "failed"
        rerun.write_summary(manifest, result)  # before the outcome: a re-run of this batch returns it
        manifest.write_header(header)
        self.log.info(
            "batch finished: %d succeeded, %d failed of %d, %s; results in %s",
            summary.succeeded,
            summary.failed,
            summary.total,
            format_total(summary.cost_usd, summary.items_without_cost),
            result["results_path"],
        )
        if status == "timeout":
            raise JobTimeoutError(
                f"the batch did not finish within {spec.timeout:.0f} s; {summary.failed} of {summary.total} "
                f"items unfinished or failed (results written to {result['results_path']})",
                vendor=hook.vendor,
            )
        if status == "cancelled":
            raise JobCancelledError(
                f"the batch was cancelled; results of what ran are in {result['results_path']}",
                vendor=hook.vendor,
            )
        if not ok:
            raise JobFailedError(
                f"{summary.failed} of {summary.total} items failed ({ratio:.1%} > max_failed_ratio "
                f"{spec.max_failed_ratio:.1%}); e.g. {'; '.join(summary.failure_examples)}. "
                f"Every result is in {result['results_path']}, failures in {result['failures_path']}",
                vendor=hook.vendor,
            )
        return result


def _needs_sending(states: ItemStates, index: int, round_number: int) -> bool:
    # Asked once per item of the batch on every pass: no import inside.
    kind = states.kinds[index]
    if kind == NONE or states.rounds[index] < round_number:
        return True
    return kind == ERR_TRANSIENT  # refused without creating work: a new try may send it
