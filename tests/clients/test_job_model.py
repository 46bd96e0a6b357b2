"""The one job model and its state mapping, with Theta's state table pinned entry by entry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_edgeinfer.clients.core import Job, JobState, map_state
from airflow_provider_edgeinfer.clients.theta import STATES as THETA_STATES
from airflow_provider_edgeinfer.exceptions import UnexpectedResponseError


def test_job_state_values_are_the_serialized_names() -> None:
    # Trigger events and XCom carry these strings: a rename breaks every deferred task in flight.
    assert [s.value for s in JobState] == ["queued", "running", "succeeded", "failed", "cancelled", "expired"]
    assert JobState("succeeded") is JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (JobState.QUEUED, False),
        (JobState.RUNNING, False),
        (JobState.SUCCEEDED, True),
        (JobState.FAILED, True),
        (JobState.CANCELLED, True),
        (JobState.EXPIRED, True),
    ],
)
def test_terminal_states(state: JobState, terminal: bool) -> None:
    assert state.terminal is terminal
    job = Job(vendor="theta", request_id="r", state=state, vendor_state="x")
    assert job.terminal is terminal


def test_job_is_frozen_and_round_trips() -> None:
    job = Job(vendor="theta", request_id="r1", state=JobState.RUNNING, vendor_state="processing")
    with pytest.raises(ValidationError):
        job.state = JobState.SUCCEEDED  # type: ignore[misc]
    assert Job.model_validate(job.model_dump(mode="json")) == job
    assert job.model_dump(mode="json")["state"] == "running"


@pytest.mark.parametrize(
    ("vendor_state", "expected"),
    [
        ("pending", JobState.QUEUED),
        ("processing", JobState.RUNNING),
        ("success", JobState.SUCCEEDED),
        ("error", JobState.FAILED),
        ("failed", JobState.FAILED),
        ("cancelled", JobState.CANCELLED),
    ],
)
def test_theta_state_table(vendor_state: str, expected: JobState) -> None:
    assert map_state("theta", vendor_state, THETA_STATES, "infr_rqst_1") is expected


def test_theta_state_table_has_no_other_entries() -> None:
    # A state added to the table without a test above would be believed unchecked.
    assert set(THETA_STATES) == {"pending", "processing", "success", "error", "failed", "cancelled"}


@pytest.mark.parametrize("vendor_state", ["SUCCESS", "succeeded", "", "unknown", None, ["success"], {"s": 1}])
def test_an_unknown_state_is_an_error_never_still_running(vendor_state: Any) -> None:
    with pytest.raises(UnexpectedResponseError) as raised:
        map_state("theta", vendor_state, THETA_STATES, "infr_rqst_9")
    error = raised.value
    assert error.message == (
        f"unknown state {vendor_state!r} (known: cancelled, error, failed, pending, processing, success)"
    )
    assert error.vendor == "theta"
    assert error.request_id == "infr_rqst_9"
