"""The fifth vendor's client: the neutral surface (submit, status, cancel) and nothing more.

It declares no capability, so every one keeps its default "cannot": no listing of request states,
no lost-submission search, no native batch, no uploads. The operators must cope by asking.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel

from airflow_provider_edgeinfer.clients.core import (
    Call,
    HttpResult,
    Job,
    JobState,
    VendorAPI,
    check_base_url,
    map_state,
)
from airflow_provider_edgeinfer.clients.retry import Safety

STATES = {
    "pending": JobState.QUEUED,
    "working": JobState.RUNNING,
    "done": JobState.SUCCEEDED,
    "broken": JobState.FAILED,
    "stopped": JobState.CANCELLED,
}


class Run(BaseModel):
    id: str
    model: str
    status: str
    result: Any = None
    failure: str | None = None
    price_usd: float | None = None


class Envelope(BaseModel):
    run: Run


class FifthAPI(VendorAPI):
    vendor: ClassVar[str] = "fifth"
    default_base_url: ClassVar[str] = "https://api.fifth.invalid"

    def __init__(self, base_url: str) -> None:
        self.base_url = check_base_url(base_url, vendor=self.vendor)

    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,)

    def _job(self, result: HttpResult) -> Job:
        run = self.model(Envelope, self.json_body(result), result).run
        state = map_state(self.vendor, run.status, STATES, run.id)
        return Job(
            vendor=self.vendor,
            request_id=run.id,
            state=state,
            vendor_state=run.status,
            service=run.model,
            output=run.result if state is JobState.SUCCEEDED else None,
            error=run.failure,
            cost_usd=run.price_usd,
        )

    def _run_url(self, request_id: str, *rest: str) -> str:
        return "/".join((self.base_url, "v1", "runs", quote(request_id, safe=""), *rest))

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Job]:
        body = {"model": service, "input": input}
        return Call(
            "submit", "POST", f"{self.base_url}/v1/runs", self._job, safety=Safety.CREATES_WORK, json=body
        )

    def status(self, request_id: str) -> Call[Job]:
        return Call("status", "GET", self._run_url(request_id), self._job, request_id=request_id)

    def cancel(self, request_id: str) -> Call[Job]:
        return Call("cancel", "POST", self._run_url(request_id, "stop"), self._job, request_id=request_id)
