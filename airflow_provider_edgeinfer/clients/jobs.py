"""The one job model every vendor's states map onto (vendor contracts, "One model across vendors")."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from airflow_provider_edgeinfer.exceptions import UnexpectedResponseError


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class Job(BaseModel):
    """One remote request in normalized form: small enough for XCom and trigger events."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    request_id: str
    state: JobState
    vendor_state: str
    service: str | None = None
    output: Any = None
    error: str | None = None
    cost_usd: float | None = None
    #: Where the result is fetched when it is not inline (OctoAI ``response_url``).
    result_url: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal


def map_state(
    vendor: str, vendor_state: str, table: Mapping[str, JobState], request_id: str | None
) -> JobState:
    """Map a vendor's state string; an unknown one is an error, never "still running"."""
    try:
        return table[vendor_state]
    except (KeyError, TypeError):
        raise UnexpectedResponseError(
            f"unknown state {vendor_state!r} (known: {', '.join(sorted(table))})",
            vendor=vendor,
            request_id=request_id,
        ) from None
