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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.manifest import Header, ItemRecord, Manifest
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
    source_conn_id: str | None = None
    output_conn_id: str | None = None
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
    """One task's batch. ``on_written(output_dir)`` is told once the results files are written."""

    def __init__(
        self,
        spec: BatchSpec,
        hook: EdgeInferHook,
        *,
        log: logging.Logger | Any = None,
        on_written: Callable[[ObjectStoragePath], None] | None = None,
    ) -> None:
        self.spec = spec
        self.hook = hook
        self.log = log or logging.getLogger("airflow_provider_edgeinfer.batch")
        self.on_written = on_written
        #: The output directory, manifest and items, once opened (on the worker they stay loaded).
        self._opened: tuple[ObjectStoragePath, Manifest, list[BatchItem]] | None = None

    # -- setup ---------------------------------------------------------------------------------

    def _open(self) -> tuple[ObjectStoragePath, Manifest, list[BatchItem]]:
        if self._opened is not None:
            return self._opened
        from airflow_provider_edgeinfer.batch.inputs import is_files, load_items
        from airflow_provider_edgeinfer.batch.manifest import Manifest
        from airflow_provider_edgeinfer.operators.outputs import prepare_output_dir

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
            items = load_items(
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

    def _validate(self, items: list[BatchItem], mode: str) -> None:
        """Every input checked locally before anything is sent (and paid for)."""
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
        if spec.file_field and any(item.source is not None for item in items):
            from airflow_provider_edgeinfer.operators.upload import require_file_inputs

            require_file_inputs(hook, spec.service, [spec.file_field])
        if mode == "native":
            hook.check_native_batch_service(spec.service)
            return
        for item in items:
            checked = self._stand_in(item).input
            try:
                hook.validate_submission(spec.service, spec.prediction, checked, **spec.vendor_options)
            except InputValidationError as exc:
                raise InputValidationError(
                    f"item {item.custom_id!r} ({item.ref}): {exc.message}", vendor=hook.vendor
                ) from None

    def _header(self, manifest: Manifest, items: list[BatchItem], mode: str) -> Header:
        from airflow_provider_edgeinfer.batch.inputs import fingerprint
        from airflow_provider_edgeinfer.batch.manifest import Header, Round

        spec, hook = self.spec, self.hook
        fp = fingerprint(hook.vendor, spec.service, spec.prediction, items)
        header = manifest.read_header()
        if header is not None and header.fingerprint != fp:
            if header.outcome is None and manifest.has_submissions(header):
                raise ConfigurationError(
                    f"output_path {manifest.output_dir} holds an unfinished batch with other inputs",
                    vendor=hook.vendor,
                    hint="Use a new output_path per batch (e.g. template it with {{ run_id }}).",
                )
            header = None
        elif header is not None and header.outcome == "succeeded":
            self.log.info("the batch in %s already succeeded; this run starts a new one", manifest.output_dir)
            header = None
        if header is None:
            manifest.reset()
            now = time.time()
            header = Header(
                fingerprint=fp,
                vendor=hook.vendor,
                service=spec.service,
                prediction=spec.prediction,
                mode=mode,  # type: ignore[arg-type]
                total=len(items),
                created_at=now,
                rounds=[Round(number=0, started_at=now)],
            )
            if any(item.source is not None for item in items):
                manifest.write_sources([str(item.source) for item in items])
            manifest.write_header(header)
        elif header.outcome == "failed":
            retry = self._failed_indices(manifest, header, items)
            self.log.info("the previous try of this batch failed: resubmitting %d failed items", len(retry))
            if retry:
                self._new_round(manifest, header, retry)
        else:
            self.log.info("resuming the batch in %s (round %d)", manifest.output_dir, header.current.number)
        return header

    # -- rounds --------------------------------------------------------------------------------

    def start(self, context: Context) -> Wait | dict[str, Any]:
        """Open, check and run the current round (a new batch, or the one a previous try left)."""
        _, manifest, items = self._open()
        mode = self._mode()
        self._validate(items, mode)
        header = self._header(manifest, items, mode)
        return self._run_round(context, manifest, header, items)

    def _run_round(
        self, context: Context, manifest: Manifest, header: Header, items: list[BatchItem]
    ) -> Wait | dict[str, Any]:
        from airflow_provider_edgeinfer.operators.links import VendorBatchLink, push_link

        spec = self.spec
        deadline = header.current.started_at + spec.timeout
        if header.mode == "native":
            batch_id = self._native_round(context, manifest, header, items)
            push_link(context, VendorBatchLink(), self.hook.api.batch_console_url(batch_id))
            return Wait(header.current.number, deadline, batch_id=batch_id)
        push_link(context, VendorBatchLink(), self.hook.api.batch_console_url(None))
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

    def _native_round(
        self, context: Context, manifest: Manifest, header: Header, items: list[BatchItem]
    ) -> str:
        from airflow_provider_edgeinfer.batch import native
        from airflow_provider_edgeinfer.costs import format_cost, usd
        from airflow_provider_edgeinfer.operators.inference import idempotency_key

        spec, hook = self.spec, self.hook
        current = header.current
        if current.batch_id is not None:
            self.log.info(
                "reattaching to %s batch %s (round %d)", hook.vendor, current.batch_id, current.number
            )
            return current.batch_id
        chosen = items if current.indices is None else [items[i] for i in current.indices]
        budget = self.budget()
        if budget is not None:
            estimate = native.check_budget(hook, spec.service, chosen, budget)
            if estimate is not None:
                self.log.info("estimated cost %s is within max_cost_usd %s", usd(estimate), usd(budget))
        if current.key is None:
            # Intent: written before the submit, so a retry repeats it with the same key.
            current.key = idempotency_key(context, f"batch:{header.fingerprint}:{current.number}")
            manifest.write_header(header)
        metadata = {"fingerprint": header.fingerprint, "round": current.number, "source": "edgeinfer"}
        batch_id, estimate = native.submit(
            hook, spec.service, chosen, key=current.key, metadata=metadata, batch_timeout=spec.batch_timeout
        )
        current.batch_id = batch_id
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
        return batch_id

    def _fanout_round(self, manifest: Manifest, header: Header, items: list[BatchItem]) -> None:
        current = header.current
        chosen = items if current.indices is None else [items[i] for i in current.indices]
        for attempt in range(3):
            records = manifest.items()
            self._settle_unknown(manifest, header, records)
            records = manifest.items()
            to_send = [item for item in chosen if _needs_sending(records.get(item.index), current.number)]
            if not to_send:
                break
            if attempt == 0 and len(to_send) < len(chosen):
                self.log.info(
                    "resuming: %d of %d items already submitted, submitting the %d missing",
                    len(chosen) - len(to_send),
                    len(chosen),
                    len(to_send),
                )
            to_send = self._uploaded(to_send)
            started = time.monotonic()
            stats = asyncio.run(self._fan_out(manifest, to_send, current.number))
            current.submitted += stats.sent
            current.submit_seconds += time.monotonic() - started
            manifest.write_header(header)
            self.log.info(
                "round %d: %d submitted, %d refused, %d answers lost, %.0f submissions/s",
                current.number,
                stats.sent,
                stats.failed,
                stats.unknown,
                stats.rate(),
            )
            if not stats.unknown:
                break
        manifest.compact()

    def _settle_unknown(self, manifest: Manifest, header: Header, records: dict[int, ItemRecord]) -> None:
        """Items sent whose answer was lost: find them at the vendor, or decide what they become."""
        from airflow_provider_edgeinfer.batch.fanout import resolve_unknown
        from airflow_provider_edgeinfer.batch.manifest import ItemRecord

        spec, hook = self.spec, self.hook
        unknown = {
            i: r for i, r in records.items() if r.kind == "intent" and r.round == header.current.number
        }
        if not unknown:
            return
        known = {r.request_id for r in records.values() if r.request_id}
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

    def _stand_in(self, item: BatchItem) -> BatchItem:
        """The item as checked before its file is sent: a name for an upload not made yet, or an
        empty file for one read just before its call."""
        field_ = self.spec.file_field
        if item.source is None or not field_:
            return item
        from dataclasses import replace

        from airflow_provider_edgeinfer.clients.core import InlineFile

        stand_in = InlineFile(item.source.name, b"") if self._inline() else f"upload-of-{field_}"
        return replace(item, input={**item.input, field_: stand_in})

    def _inline_reader(self) -> Callable[[BatchItem], Awaitable[BatchItem]] | None:
        """Reads an item's file just before its call, in a thread: at most one file per sender in memory."""
        if not self._inline():
            return None
        from dataclasses import replace

        from airflow_provider_edgeinfer.operators._sources import read_inline

        hook, service, field_ = self.hook, self.spec.service, str(self.spec.file_field)

        async def read(item: BatchItem) -> BatchItem:
            if item.source is None:
                return item
            content = await asyncio.to_thread(read_inline, hook, service, field_, item.source)
            return replace(item, input={**item.input, field_: content})

        return read

    def _uploaded(self, items: list[BatchItem]) -> list[BatchItem]:
        """File items with their files uploaded (just before sending, only the ones being sent)."""
        from dataclasses import replace

        files = [item for item in items if item.source is not None]
        if not files or self._inline():
            return items
        from airflow_provider_edgeinfer.operators.upload import upload_files

        spec = self.spec
        names = upload_files(
            self.hook,
            spec.service,
            spec.prediction,
            str(spec.file_field),
            [item.source for item in files],
            max_concurrency=spec.max_concurrency,
        )
        uploaded = {
            item.index: replace(item, input={**item.input, str(spec.file_field): name})
            for item, name in zip(files, names, strict=True)
        }
        return [uploaded.get(item.index, item) for item in items]

    async def _fan_out(self, manifest: Manifest, items: list[BatchItem], round_number: int) -> FanOutStats:
        from contextlib import AsyncExitStack

        from airflow_provider_edgeinfer.batch.fanout import FanOut, sender_for, single_attempt
        from airflow_provider_edgeinfer.batch.manifest import JournalWriter

        spec, hook = self.spec, self.hook
        conn = hook.connection
        settings = hook.http_settings(conn)
        header = manifest.read_header()
        started = header.current.started_at if header is not None else time.time()
        probe = hook.api.submit(
            spec.service, self._stand_in(items[0]).input, prediction=spec.prediction, **spec.vendor_options
        )
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                sender_for(
                    hook.api, hook.credentials(conn), single_attempt(settings, spec.max_concurrency), probe
                )
            )
            writer = await stack.enter_async_context(JournalWriter(manifest))
            fan_out = FanOut(
                api=hook.api,
                client=client,
                writer=writer,
                service=spec.service,
                prediction=spec.prediction,
                round=round_number,
                concurrency=spec.max_concurrency,
                deadline=started + spec.timeout,
                settings=settings,
                vendor_options=spec.vendor_options,
                prepare=self._inline_reader(),
            )
            return await fan_out.run(iter(items), len(items))

    # -- after a watch -------------------------------------------------------------------------

    def resume(self, context: Context, event: dict[str, Any] | None) -> Wait | dict[str, Any]:
        """The watch of the current round ended with ``event``: results, or the next round."""
        from airflow_provider_edgeinfer.exceptions import EdgeInferError, UnexpectedResponseError
        from airflow_provider_edgeinfer.triggers.events import ErrorPayload, rebuild_error

        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise UnexpectedResponseError("the batch trigger sent an event this operator does not understand")
        output_dir, manifest, items = self._open()
        header = manifest.read_header()
        if header is None:
            raise ConfigurationError(f"the batch manifest in {output_dir} disappeared while the batch ran")
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

    def _failed_indices(self, manifest: Manifest, header: Header, items: list[BatchItem]) -> list[int]:
        """Items worth another round: failed for a reason other than their input (or a lost answer)."""
        from airflow_provider_edgeinfer.batch import results

        if header.mode == "native":
            positions = results.round_items(header, len(items))
            out: set[int] = set()
            for number, batch_round in enumerate(header.rounds):
                if batch_round.batch_id is not None:
                    out.difference_update(positions[number])
                    out.update(results.native_retryable(self.hook, batch_round.batch_id, positions[number]))
            return sorted(out)
        return results.fanout_retryable(self.hook, self.spec.service, manifest.items())

    def _cancel(self, header: Header, manifest: Manifest) -> None:
        """Timeout: cancel the native batch, or every unfinished request of the fan-out."""
        if not self.spec.cancel_on_kill:
            return
        from airflow_provider_edgeinfer.batch.watch import cancel_batch, load_fanout_watch
        from airflow_provider_edgeinfer.clients.transport import AsyncClient

        hook = self.hook

        async def cancel() -> None:
            conn = hook.connection
            client: AsyncClient[Any] = AsyncClient(hook.api, hook.credentials(conn), hook.http_settings(conn))
            try:
                watch: Any = None
                if header.current.batch_id is None:
                    watch = load_fanout_watch(str(manifest.output_dir), header.current.number, 16)
                    await watch.poll(client)  # only still-unfinished requests are cancelled
                await cancel_batch(client, header.current.batch_id, watch, self.log)
            finally:
                await client.aclose()

        try:
            asyncio.run(cancel())
        except Exception as exc:  # the results still get written; the task fails on the timeout anyway
            self.log.warning("could not cancel the batch after its timeout: %s", exc)

    def _finish(
        self, manifest: Manifest, header: Header, items: list[BatchItem], status: str
    ) -> dict[str, Any]:
        from airflow_provider_edgeinfer.batch import native, results
        from airflow_provider_edgeinfer.costs import format_total

        spec, hook = self.spec, self.hook
        output_dir = manifest.output_dir
        unfinished = (
            "the batch timed out before this request finished"
            if status == "timeout"
            else "the request had not finished when the batch ended"
        )
        with results.ResultsWriter(output_dir, len(items)) as writer:
            if header.mode == "native":
                results.write_native(hook, header, items, writer)
            else:
                results.write_fanout(
                    hook,
                    spec.service,
                    items,
                    manifest.items(),
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
            result["batch_ids"] = [r.batch_id for r in header.rounds if r.batch_id]
            if spec.export_format and header.current.batch_id:
                result["export_path"] = native.export(
                    hook, header.current.batch_id, spec.export_format, output_dir
                )
        if self.on_written is not None:
            self.on_written(output_dir)
        ratio = summary.failed / summary.total if summary.total else 0.0
        ok = status == "success" and ratio <= spec.max_failed_ratio
        header.outcome = "succeeded" if ok else "failed"
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


def _needs_sending(record: ItemRecord | None, round_number: int) -> bool:
    if record is None or record.round < round_number:
        return True
    if record.kind == "err":
        return record.transient  # refused without creating work: a new try may send it
    return False
