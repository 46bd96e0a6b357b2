"""InferenceRequestSensor: wait for a request created elsewhere (by id) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_edgeinfer.exceptions import ConfigurationError, JobCancelledError, JobFailedError
from airflow_provider_edgeinfer.progress import VendorRequestLink, push_link, registered
from airflow_provider_edgeinfer.sensors import EdgeInferSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger


class InferenceRequestSensor(EdgeInferSensor):
    """Succeeds when the request ``request_id`` on ``conn_id`` succeeds; fails if it fails or is cancelled.

    Returns a small summary: vendor, request id, state, cost. Every other argument of Airflow's
    sensors (``poke_interval``, default 60 s, raised to 1 s when below; ``timeout``; ``mode``...)
    applies; ``timeout`` and ``poke_interval`` must be finite. A vendor that answers in the
    submitting call has no request to wait for: the sensor refuses it.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor. Templated.
    :param request_id: the vendor's id of the request. Templated.
    :param deferrable: wait in the triggerer, through the same trigger the InferenceOperator uses,
        instead of poking from a worker (default ``[operators] default_deferrable``, which is
        ``False`` unless configured).
    :param cancel_on_kill: cancel the request when the sensor is killed. Off by default: the sensor
        did not create the request.
    """

    template_fields: Sequence[str] = ("conn_id", "request_id")
    operator_extra_links = registered(VendorRequestLink(), "request_pages")  # type: ignore[assignment]

    def __init__(
        self,
        *,
        conn_id: str,
        request_id: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, deferrable=deferrable, cancel_on_kill=cancel_on_kill, **kwargs)
        self.request_id = request_id

    def _summary(self, job: Any) -> dict[str, Any]:
        from airflow_provider_edgeinfer.progress import format_cost

        self.log.info(
            "%s request %s %s, %s; summary in XCom",
            job.vendor,
            job.request_id,
            job.state.value,
            format_cost(job.cost_usd),
        )
        return {
            "vendor": job.vendor,
            "request_id": job.request_id,
            "state": job.state.value,
            "cost_usd": job.cost_usd,
        }

    def _status_call(self, hook: Any) -> Any:
        call = hook.api.status(self.request_id)
        if call is None:
            raise ConfigurationError(
                f"{hook.vendor} inference is synchronous: there is no request to wait for", vendor=hook.vendor
            )
        return call

    def poke(self, context: Context) -> bool | Any:
        from airflow.sdk.bases.sensor import PokeReturnValue

        from airflow_provider_edgeinfer.clients.core import JobState
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            job = hook.run(self._status_call(hook))
        finally:
            hook.close()
        if job.state is JobState.SUCCEEDED:
            return PokeReturnValue(is_done=True, xcom_value=self._summary(job))
        if job.state is JobState.CANCELLED:
            raise JobCancelledError(
                "the request was cancelled", vendor=hook.vendor, request_id=job.request_id
            )
        if job.terminal:
            raise JobFailedError(
                job.error or f"the request ended {job.state.value}",
                vendor=hook.vendor,
                request_id=job.request_id,
            )
        self.log.info("%s request %s is %s", hook.vendor, job.request_id, job.vendor_state)
        return False

    def _start(self, context: Context, hook: EdgeInferHook) -> InferenceTrigger:
        from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger

        self._status_call(hook)  # a synchronous vendor has nothing to wait for: fail now
        push_link(context, VendorRequestLink(), hook.api.console_url(self.request_id))
        return InferenceTrigger(
            conn_id=self.conn_id,
            request_id=self.request_id,
            deadline=time.time() + float(self.timeout),
            poll_interval=float(self.poke_interval),
            cancel_on_kill=self.cancel_on_kill,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_provider_edgeinfer.clients.core import Job
        from airflow_provider_edgeinfer.exceptions import JobTimeoutError, rebuild_error
        from airflow_provider_edgeinfer.triggers.base import parse_event

        payload = parse_event(event, "edgeinfer")
        if payload.status == "error" and payload.error is not None:
            raise rebuild_error(payload.error)
        if payload.status == "timeout":
            raise JobTimeoutError(
                f"the request did not finish within {float(self.timeout):.0f} s",
                vendor=payload.vendor,
                request_id=payload.request_id,
            )
        job = Job.model_validate(payload.job) if payload.job else None
        if payload.status == "cancelled":
            raise JobCancelledError(
                "the request was cancelled", vendor=payload.vendor, request_id=payload.request_id
            )
        if payload.status != "success" or job is None:
            raise JobFailedError(
                (job.error if job else None) or "the request failed",
                vendor=payload.vendor,
                request_id=payload.request_id,
            )
        return self._summary(job)
