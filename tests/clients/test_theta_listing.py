"""The one walk down the Theta project listing (:class:`ListingScan`): its stop rule and pagination."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Call, HttpResult
from airflow_provider_edgeinfer.clients.theta import CLOCK_SKEW_SECONDS, PAGE_SIZE, ListingScan, ThetaAPI

NOW = 1_800_000_000.0


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class Listing:
    """A project listing, newest first, served ``served`` a page whatever is asked (a capped server)."""

    def __init__(self, ages: Sequence[float | None], served: int, report_size: bool = True) -> None:
        self.requests = [
            {
                "id": f"infr_rqst_{n}",
                "state": "success",
                "create_time": None if age is None else _stamp(NOW - age),
            }
            for n, age in enumerate(ages)
        ]
        self.served = served
        self.report_size = report_size
        self.asked: list[dict[str, Any]] = []

    def send(self, call: Call[Any]) -> Any:
        params = dict(call.params or {})
        self.asked.append(params)
        page = int(params["page"])
        chunk = self.requests[page * self.served : (page + 1) * self.served]
        pagination: dict[str, Any] = {"page": page, "total": len(self.requests)}
        if self.report_size:
            pagination["number"] = self.served
        body = {"status": "success", "body": {"infer_requests": chunk, "pagination": pagination}}
        return call.parse(HttpResult(200, httpx.Headers(), json.dumps(body).encode(), call.url))


def _api() -> ThetaAPI:
    return ThetaAPI("http://127.0.0.1:9", project_id="prj_test")


def test_one_page_size_is_asked_and_a_capped_server_is_followed() -> None:
    listing = Listing([0.0] * 7, served=3)
    seen = [entry.id for entry in _api().scan_requests(NOW - 60).walk(listing.send)]
    assert seen == [f"infr_rqst_{n}" for n in range(7)]
    assert [p["number"] for p in listing.asked] == [PAGE_SIZE] * 3
    assert [p["page"] for p in listing.asked] == [0, 1, 2]


def test_a_capped_server_without_its_page_size_is_read_until_an_empty_page() -> None:
    listing = Listing([0.0] * 4, served=2, report_size=False)
    assert len(list(_api().scan_requests(NOW - 60).walk(listing.send))) == 4
    assert [p["page"] for p in listing.asked] == [0, 1, 2]


def test_the_walk_ends_at_the_first_request_older_than_the_window() -> None:
    since = NOW - 100
    # Newest first: two inside the window, one just inside the clock-skew allowance, then older ones.
    ages = [0.0, 50.0, 100 + CLOCK_SKEW_SECONDS - 1, 100 + CLOCK_SKEW_SECONDS + 1, 5.0, 0.0]
    listing = Listing(ages, served=2)
    scan = _api().scan_requests(since)
    seen = [entry.id for entry in scan.walk(listing.send)]
    # The older one is not yielded, and nothing after it is read, even a later page.
    assert seen == ["infr_rqst_0", "infr_rqst_1", "infr_rqst_2"]
    assert scan.pages == 2
    assert len(listing.asked) == 2


def test_a_request_without_a_readable_time_does_not_end_the_walk() -> None:
    listing = Listing([None, 0.0], served=5)
    assert [e.id for e in _api().scan_requests(NOW).walk(listing.send)] == ["infr_rqst_0", "infr_rqst_1"]


def test_a_caller_that_found_everything_reads_no_further_page() -> None:
    listing = Listing([0.0] * 9, served=3)
    for entry in _api().scan_requests(NOW - 60).walk(listing.send):
        if entry.id == "infr_rqst_1":
            break
    assert len(listing.asked) == 1


async def test_the_async_walk_follows_the_same_rule() -> None:
    listing = Listing([0.0, 0.0, CLOCK_SKEW_SECONDS + 61, 0.0], served=2)

    async def send(call: Call[Any]) -> Any:
        return listing.send(call)

    scan = _api().scan_requests(NOW - 60)
    assert [e.id async for e in scan.awalk(send)] == ["infr_rqst_0", "infr_rqst_1"]
    assert len(listing.asked) == 2


def test_a_vendor_without_a_listing_says_so() -> None:
    from airflow_provider_edgeinfer.clients.core import VendorAPI
    from airflow_provider_edgeinfer.exceptions import ConfigurationError

    assert _api().lists_request_states
    assert not ThetaAPI("http://127.0.0.1:9").lists_request_states  # no project: no listing
    assert not VendorAPI().lists_request_states
    with pytest.raises(ConfigurationError, match="cannot list"):
        VendorAPI().scan_requests(NOW)
    assert isinstance(_api().scan_requests(NOW), ListingScan)
