"""BatchOperator: thousands of inferences in one task, results as JSONL in object storage.

A vendor that runs batches itself gets one native batch; any other gets a fan-out from the worker. Either
way the task then defers to the :class:`~airflow_provider_edgeinfer.triggers.batch.BatchTrigger`
with a reference (batch id, or the output directory whose manifest lists the requests), and
``execute_complete`` streams the results into ``output_path``. This class only drives the state
machine of :mod:`airflow_provider_edgeinfer.batch` (:class:`~airflow_provider_edgeinfer.batch.run.BatchRun`):
inputs, manifest, fan-out, native batches, watching and results live there.

This module is imported when DAG files are parsed: vendor clients load when the task runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_edgeinfer.lineage import Lineage
from airflow_provider_edgeinfer.progress import VendorBatchLink, push_link, registered

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_edgeinfer.batch.run import BatchRun, Wait
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.triggers.batch import BatchTrigger

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
    :param source_conn_id: the storage connection an ``inputs`` URI (JSONL file or glob) that names
        none is read with (default: the scheme's default connection, ``aws_default`` for ``s3://``).
    :param output_conn_id: the storage connection an ``output_path`` URI that names none is written
        with (default: the scheme's default connection, ``aws_default`` for ``s3://``).
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
    :param poll_interval: seconds between polls of the whole batch (default 30); below 1 s
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
    :param max_transient_failures: consecutive transient failures of the batch's polls (network
        errors, 5xx, malformed answers) tolerated before the task fails; a 429 is not one (it pauses
        the connection until its ``Retry-After``). ``0`` fails on the first.
    :param vendor_options: extra keyword arguments for the vendor's submit.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "service",
        "prediction",
        "inputs",
        "output_path",
        "source_conn_id",
        "output_conn_id",
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
        source_conn_id: str | None = None,
        output_conn_id: str | None = None,
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
        self.source_conn_id = source_conn_id
        self.output_conn_id = output_conn_id
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
        self._lineage: Lineage | None = None
        if export_format not in (None, "jsonl", "csv"):
            raise ValueError("export_format must be 'jsonl' or 'csv'")

    # -- driving the batch ---------------------------------------------------------------------

    def _batch_run(self, context: Context, hook: EdgeInferHook) -> BatchRun:
        from dataclasses import fields

        from airflow_provider_edgeinfer.batch.run import BatchRun, BatchSpec

        spec = BatchSpec(**{f.name: getattr(self, f.name) for f in fields(BatchSpec)})
        return BatchRun(
            spec,
            hook,
            log=self.log,
            on_written=lambda output_dir: self._emit_asset(context, output_dir),
            on_page=lambda url: push_link(context, VendorBatchLink(), url),
        )

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            run = self._batch_run(context, hook)
            return self._drive(run, run.start(context), context)
        finally:
            hook.close()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            run = self._batch_run(context, hook)
            return self._drive(run, run.resume(context, event), context)
        finally:
            hook.close()

    def _drive(self, run: BatchRun, step: Wait | dict[str, Any], context: Context) -> Any:
        """Wait for each round (deferred, or here on the worker) until the machine has a result."""
        from airflow_provider_edgeinfer.batch.run import Wait

        while isinstance(step, Wait):
            trigger = self._trigger(run.hook, step)
            if self.deferrable:
                from airflow_provider_edgeinfer.triggers.base import deferral_timeout

                self.defer(
                    trigger=trigger,
                    method_name="execute_complete",
                    timeout=deferral_timeout(trigger.deadline - time.time()),
                )
            step = run.resume(context, trigger.run_on_worker())
        self._lineage = Lineage(
            vendor=step["vendor"],
            service=self.service,
            prediction=self.prediction,
            inputs=[] if isinstance(self.inputs, list | tuple) else [self.inputs],
            outputs=[step["output_path"], step["results_path"]],
            request_ids=list(step.get("batch_ids") or []),
            total=step["total"],
            succeeded=step["succeeded"],
            failed=step["failed"],
            cost_usd=step["cost_usd"],
        )
        return step

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the JSONL file or glob read, the output folder and ``results.jsonl`` written,
        the vendor, service, item counts and cost."""
        from airflow_provider_edgeinfer.lineage import operator_lineage

        return operator_lineage(self._lineage, self)

    def _trigger(self, hook: EdgeInferHook, wait: Wait) -> BatchTrigger:
        from airflow_provider_edgeinfer.triggers.batch import BatchTrigger

        return BatchTrigger(
            vendor=hook.vendor,
            conn_id=self.conn_id,
            deadline=wait.deadline,
            batch_id=wait.batch_id,
            output_path=wait.output_path,
            round=wait.round,
            poll_interval=self.poll_interval,
            cancel_on_kill=self.cancel_on_kill,
            max_transient_failures=self.max_transient_failures,
            poll_concurrency=self.max_concurrency,
        )

    def _emit_asset(self, context: Context, output_dir: ObjectStoragePath) -> None:
        from airflow.sdk import AssetAlias

        events = context.get("outlet_events")
        if events is None or not any(isinstance(o, AssetAlias) for o in self.outlets):
            return
        asset = _output_asset(output_dir)
        if asset is not None:
            events[AssetAlias(OUTPUT_ALIAS)].add(asset)
