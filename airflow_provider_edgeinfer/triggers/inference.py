"""One trigger for every vendor: waits for one request to end, in the triggerer's event loop.

It only polls (or, for a synchronous vendor, makes the one call), never submits work of its own
and never downloads results. Its kwargs hold ids and settings, never secrets. It shares the HTTP
client of its connection with every other trigger of that connection on the loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeinfer.exceptions import (
    EdgeInferError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from airflow_provider_edgeinfer.triggers.events import error_payload, job_event

#: Consecutive transient failures (network, 5xx, 429, malformed answers) tolerated before giving up.
DEFAULT_MAX_TRANSIENT_FAILURES = 5
#: Polls are spread over +/- this fraction of the interval so that many triggers do not align.
POLL_JITTER = 0.2


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TransportError | ServerError | RateLimitError | UnexpectedResponseError)


class InferenceTrigger(BaseTrigger):
    """Fires exactly one event: ``success``, ``failed``, ``cancelled``, ``timeout`` or ``error``.

    :param vendor: which hook to use (``theta``, ``octoai``, ``infrai``, ``omnitensor``).
    :param conn_id: the Airflow connection.
    :param request_id: the vendor's id of the request to watch.
    :param deadline: epoch seconds (anchored to the submission) after which ``timeout`` fires.
    :param poll_interval: seconds between polls.
    :param cancel_on_kill: cancel the remote request when a user kills the task.
    :param submit: for a synchronous vendor only: ``{service, prediction, input, idempotency_key}``
        of the one call this trigger makes on the worker's behalf (the worker made none).
    """

    def __init__(
        self,
        *,
        vendor: str,
        conn_id: str,
        request_id: str | None,
        deadline: float,
        poll_interval: float = 10.0,
        cancel_on_kill: bool = True,
        max_transient_failures: int = DEFAULT_MAX_TRANSIENT_FAILURES,
        submit: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.vendor = vendor
        self.conn_id = conn_id
        self.request_id = request_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        self.max_transient_failures = max_transient_failures
        self.submit = submit

    def __repr__(self) -> str:
        return (
            f"InferenceTrigger(vendor={self.vendor!r}, conn_id={self.conn_id!r}, "
            f"request_id={self.request_id!r}, deadline={self.deadline:.0f})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "vendor": self.vendor,
                "conn_id": self.conn_id,
                "request_id": self.request_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "cancel_on_kill": self.cancel_on_kill,
                "max_transient_failures": self.max_transient_failures,
                "submit": self.submit,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_edgeinfer.hooks import hook_class_for_vendor

        return hook_class_for_vendor(self.vendor)(self.conn_id)

    def _sleep_for(self) -> float:
        interval = self.poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        return max(0.0, min(interval, self.deadline - time.time()))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            client = await hook.aget_client()
        except EdgeInferError as exc:
            yield TriggerEvent(
                {
                    "status": "error",
                    "vendor": self.vendor,
                    "request_id": self.request_id,
                    "error": error_payload(exc),
                }
            )
            return
        try:
            if self.submit is not None:
                yield await self._call_synchronously(client)
                return
            async for event in self._poll(client):
                yield event
                return
        finally:
            await hook.arelease()

    async def _call_synchronously(self, client: Any) -> TriggerEvent:
        spec = self.submit or {}
        call = client.api.submit(
            spec["service"],
            spec["input"],
            prediction=spec.get("prediction"),
            idempotency_key=spec.get("idempotency_key"),
        )
        try:
            job = await asyncio.wait_for(client.send(call), timeout=max(1.0, self.deadline - time.time()))
        except TimeoutError:
            return TriggerEvent({"status": "timeout", "vendor": self.vendor, "request_id": None})
        except EdgeInferError as exc:
            return TriggerEvent(
                {"status": "error", "vendor": self.vendor, "request_id": None, "error": error_payload(exc)}
            )
        return TriggerEvent(job_event(job, include_output=True))

    async def _poll(self, client: Any) -> AsyncIterator[TriggerEvent]:
        call = client.api.status(self.request_id)
        failures = 0
        while True:
            if time.time() >= self.deadline:
                yield TriggerEvent(
                    {"status": "timeout", "vendor": self.vendor, "request_id": self.request_id}
                )
                return
            try:
                job = await client.send(call)
            except EdgeInferError as exc:
                failures += 1
                if not is_transient(exc) or failures > self.max_transient_failures:
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "vendor": self.vendor,
                            "request_id": self.request_id,
                            "error": error_payload(exc),
                        }
                    )
                    return
                self.log.warning(
                    "%s request %s: poll failed (%s of %s tolerated): %s",
                    self.vendor,
                    self.request_id,
                    failures,
                    self.max_transient_failures,
                    exc,
                )
            else:
                failures = 0
                if job.terminal:
                    yield TriggerEvent(job_event(job))
                    return
            await asyncio.sleep(self._sleep_for())

    async def on_kill(self) -> None:
        """A user killed the task (mark failed/success, clear): cancel the remote request."""
        if not self.cancel_on_kill or not self.request_id:
            return
        hook = self._hook()
        try:
            api = hook.build_api(await hook.aconnection())
            call = api.cancel(self.request_id)
            if call is None:
                self.log.info("%s cannot cancel requests; %s keeps running", self.vendor, self.request_id)
                return
            await hook.arun(call)
            self.log.info("cancelled %s request %s", self.vendor, self.request_id)
        except EdgeInferError as exc:
            self.log.warning("could not cancel %s request %s: %s", self.vendor, self.request_id, exc)
