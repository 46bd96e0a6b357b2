"""BatchSensor: wait for a batch started elsewhere (a native batch's id, or a fan-out's output directory)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
)
from airflow_provider_edgeinfer.progress import VendorBatchLink, push_link, registered
from airflow_provider_edgeinfer.sensors import EdgeInferSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_edgeinfer.batch.watch import Progress
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.triggers.batch import BatchTrigger


class BatchSensor(EdgeInferSensor):
    """Succeeds when the batch is over and at least ``min_success_ratio`` of its items succeeded.

    Give ``batch_id`` (a native batch, on a vendor that runs them) or ``output_path`` (the directory
    of a BatchOperator fan-out, whose manifest lists its requests; the latest round is watched).
    Returns the counts and the success ratio. Every other argument of Airflow's sensors
    (``poke_interval``, default 60 s, raised to 1 s when below; ``timeout``; ``mode``...) applies;
    every numeric argument must be finite.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor. Templated.
    :param batch_id: the vendor's id of a native batch. Templated.
    :param output_path: the output directory of a BatchOperator fan-out (local path, URI or
        ``ObjectStoragePath``). Templated.
    :param output_conn_id: the storage connection an ``output_path`` URI that names none is read
        with (default: the scheme's default connection, ``aws_default`` for ``s3://``). Templated.
    :param min_success_ratio: the share of items (0 to 1) that must have succeeded; below it the
        sensor fails once the batch is over.
    :param deferrable: wait in the triggerer through the BatchTrigger instead of poking from a worker
        (default ``[operators] default_deferrable``, which is ``False`` unless configured).
    :param cancel_on_kill: cancel the batch when the sensor is killed. Off by default: the sensor did
        not start the batch.
    """

    template_fields: Sequence[str] = ("conn_id", "batch_id", "output_path", "output_conn_id")
    operator_extra_links = registered(VendorBatchLink(), "batch_pages")  # type: ignore[assignment]

    def __init__(
        self,
        *,
        conn_id: str,
        batch_id: str | None = None,
        output_path: str | None = None,
        output_conn_id: str | None = None,
        min_success_ratio: float = 1.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_edgeinfer.arguments import finite

        super().__init__(conn_id=conn_id, deferrable=deferrable, cancel_on_kill=cancel_on_kill, **kwargs)
        if (batch_id is None) == (output_path is None):
            raise ValueError("give exactly one of batch_id (native batch) and output_path (fan-out)")
        min_success_ratio = finite("min_success_ratio", min_success_ratio, minimum=0, maximum=1)
        self.batch_id = batch_id
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.min_success_ratio = min_success_ratio

    def _trigger(self, vendor: str) -> BatchTrigger:
        from airflow_provider_edgeinfer.batch.manifest import Manifest
        from airflow_provider_edgeinfer.storage import as_storage_path
        from airflow_provider_edgeinfer.triggers.batch import BatchTrigger

        round_number = 0
        output_path = None
        if self.output_path is not None:
            path = as_storage_path(self.output_path, conn_id=self.output_conn_id)
            header = Manifest(path).read_header()
            if header is None:
                raise ConfigurationError(f"{self.output_path} holds no batch manifest", vendor=vendor)
            round_number, output_path = header.current.number, str(path)
        return BatchTrigger(
            vendor=vendor,
            conn_id=self.conn_id,
            deadline=time.time() + float(self.timeout),
            batch_id=self.batch_id,
            output_path=output_path,
            round=round_number,
            poll_interval=float(self.poke_interval),
            cancel_on_kill=self.cancel_on_kill,
        )

    def _judge(self, counts: dict[str, Any]) -> dict[str, Any]:
        total = int(counts.get("total") or 0)
        succeeded = int(counts.get("succeeded") or 0)
        ratio = succeeded / total if total else 0.0
        if ratio < self.min_success_ratio:
            raise JobFailedError(
                f"{succeeded} of {total} items succeeded ({ratio:.1%} < min_success_ratio "
                f"{self.min_success_ratio:.1%})"
            )
        from airflow_provider_edgeinfer.progress import format_cost

        self.log.info(
            "batch over: %d of %d items succeeded, %s; counts in XCom",
            succeeded,
            total,
            format_cost(counts.get("cost_usd")),
        )
        return {**counts, "success_ratio": round(ratio, 6)}

    def poke(self, context: Context) -> bool | Any:
        from airflow.sdk.bases.sensor import PokeReturnValue

        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        trigger = self._trigger(hook.vendor)
        progress = asyncio.run(_poll_once(hook, trigger))
        hook.close()
        self.log.info("batch: %d of %d done (%d failed)", progress.done, progress.total, progress.failed)
        if not progress.finished:
            return False
        if progress.state in ("cancelled", "cancelling"):
            raise JobCancelledError("the batch was cancelled", request_id=self.batch_id)
        return PokeReturnValue(is_done=True, xcom_value=self._judge(progress.as_dict()))

    def _start(self, context: Context, hook: EdgeInferHook) -> BatchTrigger:
        trigger = self._trigger(hook.vendor)  # a missing manifest fails here, before anything else
        push_link(context, VendorBatchLink(), hook.api.batch_console_url(self.batch_id))
        return trigger

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_provider_edgeinfer.exceptions import ErrorPayload, rebuild_error

        event = event or {}
        status = event.get("status")
        if status == "error" and event.get("error"):
            raise rebuild_error(ErrorPayload.model_validate(event["error"]))
        if status == "timeout":
            raise JobTimeoutError(f"the batch did not finish within {float(self.timeout):.0f} s")
        if status == "cancelled":
            raise JobCancelledError("the batch was cancelled", request_id=self.batch_id)
        if status != "success" or not isinstance(event.get("counts"), dict):
            raise JobFailedError(f"the batch trigger ended with {status!r}")
        return self._judge(event["counts"])


async def _poll_once(hook: Any, trigger: BatchTrigger) -> Progress:
    client = await hook.aget_client()
    try:
        watch = await trigger.make_watch()
        return await watch.poll(client)
    finally:
        await hook.arelease()
