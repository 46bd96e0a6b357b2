"""BatchOperator: thousands of inferences in one task, results as JSONL in object storage.

A vendor that runs batches itself gets one native batch; any other gets a fan-out from the worker. Either
way the task then defers to the :class:`~airflow_provider_edgeinfer.triggers.batch.BatchTrigger`
with a reference (batch id, or the output directory whose manifest lists the requests), and
``execute_complete`` streams the results into ``output_path``. The logic lives in small modules:
inputs (``batch_inputs``), manifest (``triggers.batch_manifest``), fan-out (``batch_fanout``),
native batches (``batch_native``) and results (``batch_results``).

This module is imported when DAG files are parsed: vendor clients load when the task runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    naming_vendor,
)
from airflow_provider_edgeinfer.operators.links import VendorBatchLink, registered

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.operators.batch_inputs import BatchItem
    from airflow_provider_edgeinfer.triggers.batch import BatchTrigger
    from airflow_provider_edgeinfer.triggers.batch_manifest import Header, ItemRecord, Manifest

#: Asset alias a batch with a templated output_path emits its output directory to, once written.
OUTPUT_ALIAS = "edgeinfer_batch_output"


def _output_asset(output_path: Any) -> Any:
    """The output directory as an Asset (URI without the connection id), or None if unusable."""
    from airflow.sdk import Asset

    text = str(output_path)
    if "://" not in text:
        import os

        text = "file://" + os.path.abspath(text)
    scheme, _, rest = text.partition("://")
    # An ObjectStoragePath URI may carry its conn id (s3://conn@bucket/...): an asset names data, not access.
    host, slash, path = rest.partition("/")
    uri = f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    try:
        return Asset(uri.rstrip("/") or uri)
    except (ValueError, TypeError):
        return None


class BatchOperator(BaseOperator):
    """Run ``inputs`` through ``service`` on the vendor behind ``conn_id``, as one task.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor.
    :param service: what the vendor runs each item through (as for InferenceOperator; for a native
        batch, one of the services its batches take).
    :param inputs: a list of input objects; or a JSONL file (path, URI or ``ObjectStoragePath``), one
        input per line; or a glob of files (``s3://bucket/audio/*.wav``) with ``file_field``. An item
        may carry ``custom_id`` (``{"custom_id": "a", "input": {...}}``, or a ``custom_id`` key beside
        the input's fields); otherwise its index is its id.
    :param output_path: directory receiving ``results.jsonl``, ``failures.jsonl``, ``media/`` and the
        manifest (``_edgeinfer/``). Required; declared as an asset outlet when not templated.
    :param file_field: with a glob: the input field each file fills. The file is uploaded first
        (vendors with presigned uploads), or read and sent inside the item's own call (a service
        that takes files inline, the client's ``takes_files_inline``; such a batch is always a
        fan-out, as a native batch's JSON cannot carry a file). Other vendors refuse it before
        sending, naming the vendors that take files.
    :param file_input: with a glob: the other fields of every item's input (e.g.
        ``{"model": "whisper-1", "language": "en"}``). Templated.
    :param prediction: the vendor's prediction name, for vendors whose services have several.
    :param max_concurrency: requests in flight during a fan-out (and result fetches).
    :param max_failed_ratio: largest tolerated share of failed items (0: any failure fails the task,
        after every result is written).
    :param item_retries: rounds of resubmission for items that failed transiently.
    :param poll_interval: seconds between polls of the whole batch; below 1 s
        (``arguments.MIN_POLL_INTERVAL``) it is raised to 1 s, with a warning.
    :param timeout: seconds (or timedelta) per round before unfinished work is cancelled; it also
        ends any pause a vendor's ``Retry-After`` asks of the fan-out. Every numeric argument must
        be a finite number (``nan``, ``inf`` are refused).
    :param cancel_on_kill: cancel remote work when the task is killed or times out.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param max_cost_usd: budget, for native batches: the batch is refused before submission when the
        vendor's estimate says it costs more (or cancelled at once when only the submit estimates it).
        Vendors without native batches publish no estimate: setting it is an error.
    :param retention_days: native batches: keep the batch's results this long at the vendor.
    :param export_format: native batches: also download the vendor's own export (``jsonl`` or ``csv``).
    :param batch_timeout: native batches: the vendor-side batch timeout (``"24h"``).
    :param resubmit_on_unknown_outcome: resubmit items whose submission answer was lost when the
        vendor offers no way to find them (may pay twice); by default they are reported as failed.
    :param vendor_options: extra keyword arguments for the vendor's submit.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "service",
        "prediction",
        "inputs",
        "output_path",
        "file_field",
        "file_input",
        "max_cost_usd",
    )
    template_fields_renderers = {"inputs": "json"}
    ui_color = "#e6f4ea"
    operator_extra_links = registered(VendorBatchLink(), "batch_pages")  # type: ignore[assignment]

    def __init__(
        self,
        *,
        conn_id: str,
        service: str,
        inputs: Any,
        output_path: Any,
        prediction: str | None = None,
        file_field: str | None = None,
        file_input: dict[str, Any] | None = None,
        max_concurrency: int = 16,
        max_failed_ratio: float = 0.0,
        item_retries: int = 0,
        poll_interval: float = 30.0,
        timeout: float | timedelta = 24 * 3600.0,
        cancel_on_kill: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_cost_usd: float | str | None = None,
        retention_days: float | None = None,
        export_format: str | None = None,
        batch_timeout: str | None = None,
        resubmit_on_unknown_outcome: bool = False,
        max_transient_failures: int = 5,
        vendor_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if output_path is None:
            raise ValueError("output_path is required: the directory receiving results.jsonl")
        if "outlets" not in kwargs:
            # A templated directory is only known at run time: it is emitted through an alias then.
            from airflow.sdk import AssetAlias

            templated = any(mark in str(output_path) for mark in ("{{", "{%"))
            asset = None if templated else _output_asset(output_path)
            kwargs["outlets"] = [asset if asset is not None else AssetAlias(OUTPUT_ALIAS)]
        from airflow_provider_edgeinfer import arguments

        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.service = service
        self.inputs = inputs
        self.output_path = output_path
        self.prediction = prediction
        self.file_field = file_field
        self.file_input = file_input
        self.max_concurrency = arguments.whole("max_concurrency", max_concurrency, minimum=1)
        self.max_failed_ratio = arguments.finite("max_failed_ratio", max_failed_ratio, minimum=0, maximum=1)
        self.item_retries = arguments.whole("item_retries", item_retries, minimum=0)
        self.poll_interval = arguments.poll_interval("poll_interval", poll_interval, owner=self.task_id)
        self.timeout = arguments.seconds("timeout", timeout)
        self.cancel_on_kill = cancel_on_kill
        self.deferrable = deferrable
        self.max_cost_usd = max_cost_usd
        self.retention_days = (
            None if retention_days is None else arguments.finite("retention_days", retention_days, above=0)
        )
        self.export_format = export_format
        self.batch_timeout = batch_timeout
        self.resubmit_on_unknown_outcome = resubmit_on_unknown_outcome
        self.max_transient_failures = arguments.whole(
            "max_transient_failures", max_transient_failures, minimum=0
        )
        self.vendor_options = vendor_options or {}
        if export_format not in (None, "jsonl", "csv"):
            raise ValueError("export_format must be 'jsonl' or 'csv'")

    # -- setup ---------------------------------------------------------------------------------

    def _open(self, hook: EdgeInferHook) -> tuple[ObjectStoragePath, Manifest, list[BatchItem]]:
        from airflow_provider_edgeinfer.operators.batch_inputs import is_files, load_items
        from airflow_provider_edgeinfer.operators.outputs import prepare_output_dir
        from airflow_provider_edgeinfer.triggers.batch_manifest import Manifest

        if not self.service:
            raise ConfigurationError("service is empty", vendor=hook.vendor)
        output_dir = prepare_output_dir(self.output_path, hook.vendor)
        manifest = Manifest(output_dir)
        sources = None
        if is_files(self.inputs, self.file_field):
            header = manifest.read_header()
            if header is not None and header.outcome is None:
                # A running batch keeps the files its glob matched when it started.
                sources = manifest.read_sources()
        with naming_vendor(hook.vendor):
            items = load_items(
                self.inputs, file_field=self.file_field, sources=sources, file_input=self.file_input
            )
        return output_dir, manifest, items

    def _budget(self) -> float | None:
        if self.max_cost_usd is None or self.max_cost_usd == "":
            return None
        from airflow_provider_edgeinfer.arguments import finite

        # Templated, so only known once rendered; checked before anything is sent.
        try:
            return finite("max_cost_usd", self.max_cost_usd, minimum=0)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    def _inline(self, hook: EdgeInferHook) -> bool:
        """Whether each item's file travels inside its own call (a native batch's JSON cannot carry it)."""
        from airflow_provider_edgeinfer.operators.batch_inputs import is_files

        return is_files(self.inputs, self.file_field) and hook.api.takes_files_inline(self.service)

    def _mode(self, hook: EdgeInferHook) -> str:
        if hook.api.runs_native_batches and not self._inline(hook):
            return "native"
        return "sync" if hook.api.answers_in_call(self.service) else "fanout"

    def _validate(self, hook: EdgeInferHook, items: list[BatchItem], mode: str) -> None:
        """Every input checked locally before anything is sent (and paid for)."""
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        with naming_vendor(hook.vendor):
            budget = self._budget()
        if budget is not None and mode != "native":
            raise ConfigurationError(
                f"max_cost_usd needs a vendor that estimates cost before submitting; {hook.vendor} does not",
                vendor=hook.vendor,
                hint="Use a connection whose vendor runs native batches, or drop max_cost_usd.",
            )
        if self.file_field and any(item.source is not None for item in items):
            from airflow_provider_edgeinfer.operators.upload import require_file_inputs

            require_file_inputs(hook, self.service, [self.file_field])
        if mode == "native":
            hook.check_native_batch_service(self.service)
            return
        for item in items:
            try:
                hook.validate_submission(
                    self.service, self.prediction, self._stand_in(hook, item).input, **self.vendor_options
                )
            except InputValidationError as exc:
                raise InputValidationError(
                    f"item {item.custom_id!r} ({item.ref}): {exc.message}", vendor=hook.vendor
                ) from None

    def _header(
        self, context: Context, hook: EdgeInferHook, manifest: Manifest, items: list[BatchItem], mode: str
    ) -> Header:
        from airflow_provider_edgeinfer.operators.batch_inputs import fingerprint
        from airflow_provider_edgeinfer.triggers.batch_manifest import Header, Round

        fp = fingerprint(hook.vendor, self.service, self.prediction, items)
        header = manifest.read_header()
        if header is not None and header.fingerprint != fp:
            if header.outcome is None and manifest.has_submissions(header):
                raise ConfigurationError(
                    f"output_path {manifest.output_dir} holds an unfinished batch with other inputs",
                    vendor=hook.vendor,
                    hint="Use a new output_path per batch (e.g. template it with {{ ds }}).",
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
                service=self.service,
                prediction=self.prediction,
                mode=mode,  # type: ignore[arg-type]
                total=len(items),
                created_at=now,
                rounds=[Round(number=0, started_at=now)],
            )
            if any(item.source is not None for item in items):
                manifest.write_sources([str(item.source) for item in items])
            manifest.write_header(header)
        elif header.outcome == "failed":
            retry = self._failed_indices(hook, manifest, header, items)
            self.log.info("the previous try of this batch failed: resubmitting %d failed items", len(retry))
            if retry:
                self._new_round(manifest, header, retry)
        else:
            self.log.info("resuming the batch in %s (round %d)", manifest.output_dir, header.current.number)
        return header

    # -- execute -------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.hooks import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            _, manifest, items = self._open(hook)
            mode = self._mode(hook)
            self._validate(hook, items, mode)
            header = self._header(context, hook, manifest, items, mode)
            return self._run_round(context, hook, manifest, header, items)
        finally:
            hook.close()

    def _run_round(
        self,
        context: Context,
        hook: EdgeInferHook,
        manifest: Manifest,
        header: Header,
        items: list[BatchItem],
    ) -> Any:
        from airflow_provider_edgeinfer.operators.links import VendorBatchLink, push_link

        opened = (manifest.output_dir, manifest, items)
        if header.mode == "native":
            batch_id = self._native_round(context, hook, manifest, header, items)
            push_link(context, VendorBatchLink(), hook.api.batch_console_url(batch_id))
            return self._wait(context, hook, self._trigger(hook, header, batch_id=batch_id), opened)
        push_link(context, VendorBatchLink(), hook.api.batch_console_url(None))
        self._fanout_round(hook, manifest, header, items)
        if header.mode == "sync":
            # The fan-out was the inference: each round is over when it returns.
            while header.current.number < self.item_retries:
                retry = self._failed_indices(hook, manifest, header, items)
                if not retry:
                    break
                self.log.info(
                    "round %d: sending %d transiently failed items again", header.current.number, len(retry)
                )
                time.sleep(self.poll_interval)  # the vendor refused them just now: give it a breath
                self._new_round(manifest, header, retry)
                self._fanout_round(hook, manifest, header, items)
            return self._finish(context, hook, manifest, header, items, "success")
        trigger = self._trigger(hook, header, output_path=str(manifest.output_dir))
        return self._wait(context, hook, trigger, opened)

    def _native_round(
        self,
        context: Context,
        hook: EdgeInferHook,
        manifest: Manifest,
        header: Header,
        items: list[BatchItem],
    ) -> str:
        from airflow_provider_edgeinfer.costs import format_cost, usd
        from airflow_provider_edgeinfer.operators import batch_native
        from airflow_provider_edgeinfer.operators.inference import idempotency_key

        current = header.current
        if current.batch_id is not None:
            self.log.info(
                "reattaching to %s batch %s (round %d)", hook.vendor, current.batch_id, current.number
            )
            return current.batch_id
        chosen = items if current.indices is None else [items[i] for i in current.indices]
        budget = self._budget()
        if budget is not None:
            estimate = batch_native.check_budget(hook, self.service, chosen, budget)
            if estimate is not None:
                self.log.info("estimated cost %s is within max_cost_usd %s", usd(estimate), usd(budget))
        if current.key is None:
            # Intent: written before the submit, so a retry repeats it with the same key.
            current.key = idempotency_key(context, f"batch:{header.fingerprint}:{current.number}")
            manifest.write_header(header)
        metadata = {"fingerprint": header.fingerprint, "round": current.number, "source": "edgeinfer"}
        batch_id, estimate = batch_native.submit(
            hook, self.service, chosen, key=current.key, metadata=metadata, batch_timeout=self.batch_timeout
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
        batch_native.over_budget_after_submit(hook, batch_id, estimate, budget)
        if self.retention_days is not None:
            hook.run(hook.api.batch_set_retention(batch_id, self.retention_days))
        return batch_id

    # -- fan-out -------------------------------------------------------------------------------

    def _fanout_round(
        self, hook: EdgeInferHook, manifest: Manifest, header: Header, items: list[BatchItem]
    ) -> None:
        current = header.current
        chosen = items if current.indices is None else [items[i] for i in current.indices]
        for attempt in range(3):
            records = manifest.items()
            self._settle_unknown(hook, manifest, header, records)
            records = manifest.items()
            to_send = [
                item for item in chosen if self._needs_sending(records.get(item.index), current.number)
            ]
            if not to_send:
                break
            if attempt == 0 and len(to_send) < len(chosen):
                self.log.info(
                    "resuming: %d of %d items already submitted, submitting the %d missing",
                    len(chosen) - len(to_send),
                    len(chosen),
                    len(to_send),
                )
            to_send = self._uploaded(hook, to_send)
            started = time.monotonic()
            stats = asyncio.run(self._fan_out(hook, manifest, to_send, current.number))
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

    def _needs_sending(self, record: ItemRecord | None, round_number: int) -> bool:
        if record is None or record.round < round_number:
            return True
        if record.kind == "err":
            return record.transient  # refused without creating work: a new try may send it
        return False

    def _settle_unknown(
        self, hook: EdgeInferHook, manifest: Manifest, header: Header, records: dict[int, ItemRecord]
    ) -> None:
        """Items sent whose answer was lost: find them at the vendor, or decide what they become."""
        from airflow_provider_edgeinfer.operators.batch_fanout import resolve_unknown

        unknown = {
            i: r for i, r in records.items() if r.kind == "intent" and r.round == header.current.number
        }
        if not unknown:
            return
        known = {r.request_id for r in records.values() if r.request_id}
        found, searched = resolve_unknown(hook, self.service, self.prediction, unknown, known)
        now = time.time()
        out: list[dict[str, Any]] = []
        for index, record in unknown.items():
            if index in found:
                out.append(
                    {"k": "sub", "i": index, "r": record.round, "id": found[index], "at": record.at or now}
                )
            elif searched or self.resubmit_on_unknown_outcome:
                # Not at the vendor (or the user accepts the risk): a new intent marks it for sending.
                out.append(
                    {
                        "k": "err",
                        "i": index,
                        "r": record.round,
                        "t": True,
                        "at": now,
                        "e": {"type": "OutcomeUnknownError", "message": "resubmitted after a lost answer"},
                    }
                )
        self.log.info(
            "%d submissions had lost answers: %d found at %s, %d to resubmit, %d unresolved",
            len(unknown),
            len(found),
            hook.vendor,
            sum(1 for r in out if r["k"] == "err"),
            len(unknown) - len(out),
        )
        manifest.write_segment(out)

    def _stand_in(self, hook: EdgeInferHook, item: BatchItem) -> BatchItem:
        """The item as checked before its file is read: an empty file in its place."""
        if item.source is None or not self._inline(hook):
            return item
        from dataclasses import replace

        from airflow_provider_edgeinfer.clients.core import InlineFile

        return replace(item, input={**item.input, str(self.file_field): InlineFile(item.source.name, b"")})

    def _inline_reader(self, hook: EdgeInferHook) -> Callable[[BatchItem], Awaitable[BatchItem]] | None:
        """Reads an item's file just before its call, in a thread: at most one file per sender in memory."""
        if not self._inline(hook):
            return None
        from dataclasses import replace

        from airflow_provider_edgeinfer.operators._sources import read_inline

        field = str(self.file_field)

        async def read(item: BatchItem) -> BatchItem:
            if item.source is None:
                return item
            content = await asyncio.to_thread(read_inline, hook, self.service, field, item.source)
            return replace(item, input={**item.input, field: content})

        return read

    def _uploaded(self, hook: EdgeInferHook, items: list[BatchItem]) -> list[BatchItem]:
        """File items with their files uploaded (just before sending, only the ones being sent)."""
        from dataclasses import replace

        files = [item for item in items if item.source is not None]
        if not files or self._inline(hook):
            return items
        from airflow_provider_edgeinfer.operators.upload import upload_files

        names = upload_files(
            hook,
            self.service,
            self.prediction,
            str(self.file_field),
            [item.source for item in files],
            max_concurrency=self.max_concurrency,
        )
        uploaded = {
            item.index: replace(item, input={**item.input, str(self.file_field): name})
            for item, name in zip(files, names, strict=True)
        }
        return [uploaded.get(item.index, item) for item in items]

    async def _fan_out(
        self, hook: EdgeInferHook, manifest: Manifest, items: list[BatchItem], round_number: int
    ) -> Any:
        from contextlib import AsyncExitStack

        from airflow_provider_edgeinfer.operators.batch_fanout import FanOut, sender_for, single_attempt
        from airflow_provider_edgeinfer.triggers.batch_manifest import JournalWriter

        conn = hook.connection
        settings = hook.http_settings(conn)
        header = manifest.read_header()
        started = header.current.started_at if header is not None else time.time()
        probe = hook.api.submit(
            self.service,
            self._stand_in(hook, items[0]).input,
            prediction=self.prediction,
            **self.vendor_options,
        )
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                sender_for(
                    hook.api, hook.credentials(conn), single_attempt(settings, self.max_concurrency), probe
                )
            )
            writer = await stack.enter_async_context(JournalWriter(manifest))
            fan_out = FanOut(
                api=hook.api,
                client=client,
                writer=writer,
                service=self.service,
                prediction=self.prediction,
                round=round_number,
                concurrency=self.max_concurrency,
                deadline=started + self.timeout,
                max_attempts=settings.retry.max_attempts,
                settings=settings,
                vendor_options=self.vendor_options,
                prepare=self._inline_reader(hook),
            )
            return await fan_out.run(iter(items), len(items))

    # -- waiting -------------------------------------------------------------------------------

    def _trigger(
        self,
        hook: EdgeInferHook,
        header: Header,
        *,
        batch_id: str | None = None,
        output_path: str | None = None,
    ) -> BatchTrigger:
        from airflow_provider_edgeinfer.triggers.batch import BatchTrigger

        return BatchTrigger(
            vendor=hook.vendor,
            conn_id=self.conn_id,
            deadline=header.current.started_at + self.timeout,
            batch_id=batch_id,
            output_path=output_path,
            round=header.current.number,
            poll_interval=self.poll_interval,
            cancel_on_kill=self.cancel_on_kill,
            max_transient_failures=self.max_transient_failures,
            poll_concurrency=self.max_concurrency,
        )

    def _wait(
        self,
        context: Context,
        hook: EdgeInferHook,
        trigger: BatchTrigger,
        opened: tuple[ObjectStoragePath, Manifest, list[BatchItem]] | None = None,
    ) -> Any:
        if self.deferrable:
            from airflow_provider_edgeinfer.triggers.base import deferral_timeout

            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                timeout=deferral_timeout(trigger.deadline - time.time()),
            )
        return self._complete(context, hook, trigger.run_on_worker(), opened)

    # -- completion ----------------------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_provider_edgeinfer.hooks import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            return self._complete(context, hook, event)
        finally:
            hook.close()

    def _complete(
        self,
        context: Context,
        hook: EdgeInferHook,
        event: dict[str, Any] | None,
        opened: tuple[ObjectStoragePath, Manifest, list[BatchItem]] | None = None,
    ) -> Any:
        from airflow_provider_edgeinfer.exceptions import EdgeInferError, UnexpectedResponseError
        from airflow_provider_edgeinfer.triggers.events import ErrorPayload, rebuild_error

        if not isinstance(event, dict) or event.get("status") not in (
            "success",
            "cancelled",
            "timeout",
            "error",
        ):
            raise UnexpectedResponseError("the batch trigger sent an event this operator does not understand")
        # On the worker (not deferred) the items are still loaded: no second copy of them.
        output_dir, manifest, items = opened if opened is not None else self._open(hook)
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
            self._cancel(hook, header, manifest)
            return self._finish(context, hook, manifest, header, items, "timeout")
        if (
            status == "success"
            and header.current.number < self.item_retries
            and (event.get("counts") or {}).get("failed")
        ):
            retry = self._failed_indices(hook, manifest, header, items)
            if retry:
                self.log.info(
                    "round %d: resubmitting %d transiently failed items", header.current.number, len(retry)
                )
                self._new_round(manifest, header, retry)
                return self._run_round(context, hook, manifest, header, items)
        return self._finish(context, hook, manifest, header, items, status)

    def _new_round(self, manifest: Manifest, header: Header, indices: list[int]) -> None:
        from airflow_provider_edgeinfer.triggers.batch_manifest import Round

        header.rounds.append(Round(number=header.current.number + 1, started_at=time.time(), indices=indices))
        header.outcome = None
        manifest.write_header(header)

    def _failed_indices(
        self, hook: EdgeInferHook, manifest: Manifest, header: Header, items: list[BatchItem]
    ) -> list[int]:
        """Items worth another round: failed for a reason other than their input (or a lost answer)."""
        from airflow_provider_edgeinfer.operators import batch_results

        if header.mode == "native":
            positions = batch_results.round_items(header, len(items))
            out: set[int] = set()
            for number, batch_round in enumerate(header.rounds):
                if batch_round.batch_id is not None:
                    out.difference_update(positions[number])
                    out.update(batch_results.native_retryable(hook, batch_round.batch_id, positions[number]))
            return sorted(out)
        return batch_results.fanout_retryable(hook, self.service, manifest.items())

    def _cancel(self, hook: EdgeInferHook, header: Header, manifest: Manifest) -> None:
        """Timeout: cancel the native batch, or every unfinished request of the fan-out."""
        if not self.cancel_on_kill:
            return
        from airflow_provider_edgeinfer.clients.transport import AsyncClient
        from airflow_provider_edgeinfer.triggers.batch import cancel_batch, load_fanout_watch

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

    def _emit_asset(self, context: Context, output_dir: ObjectStoragePath) -> None:
        from airflow.sdk import AssetAlias

        events = context.get("outlet_events")
        if events is None or not any(isinstance(o, AssetAlias) for o in self.outlets):
            return
        asset = _output_asset(output_dir)
        if asset is not None:
            events[AssetAlias(OUTPUT_ALIAS)].add(asset)

    def _finish(
        self,
        context: Context,
        hook: EdgeInferHook,
        manifest: Manifest,
        header: Header,
        items: list[BatchItem],
        status: str,
    ) -> dict[str, Any]:
        from airflow_provider_edgeinfer.costs import format_total
        from airflow_provider_edgeinfer.operators import batch_native, batch_results

        output_dir = manifest.output_dir
        unfinished = (
            "the batch timed out before this request finished"
            if status == "timeout"
            else "the request had not finished when the batch ended"
        )
        with batch_results.ResultsWriter(output_dir) as writer:
            if header.mode == "native":
                batch_results.write_native(hook, header, items, writer)
            else:
                batch_results.write_fanout(
                    hook,
                    self.service,
                    items,
                    manifest.items(),
                    writer,
                    concurrency=min(self.max_concurrency, batch_results.MAX_FETCH_THREADS),
                    unfinished_error=unfinished,
                )
        summary = writer.summary
        result: dict[str, Any] = {
            "vendor": hook.vendor,
            "service": self.service,
            "mode": header.mode,
            "total": summary.total,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            # Only stated costs are summed: a total of unknown costs is unknown, and they are counted.
            "cost_usd": None if summary.cost_usd is None else round(summary.cost_usd, 8),
            "items_without_cost": summary.items_without_cost,
            "rounds": len(header.rounds),
            "output_path": str(output_dir),
            "results_path": str(output_dir / batch_results.RESULTS),
            "failures_path": str(output_dir / batch_results.FAILURES),
            "media_files": summary.files,
            "manifest_path": str(manifest.directory),
        }
        if header.mode == "native":
            result["batch_ids"] = [r.batch_id for r in header.rounds if r.batch_id]
            if self.export_format and header.current.batch_id:
                result["export_path"] = batch_native.export(
                    hook, header.current.batch_id, self.export_format, output_dir
                )
        self._emit_asset(context, output_dir)
        ratio = summary.failed / summary.total if summary.total else 0.0
        ok = status == "success" and ratio <= self.max_failed_ratio
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
                f"the batch did not finish within {self.timeout:.0f} s; {summary.failed} of {summary.total} "
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
                f"{self.max_failed_ratio:.1%}); e.g. {'; '.join(summary.failure_examples)}. "
                f"Every result is in {result['results_path']}, failures in {result['failures_path']}",
                vendor=hook.vendor,
            )
        return result
