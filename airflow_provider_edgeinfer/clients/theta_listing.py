"""Theta project listings read for their states, and the one walk down them (:class:`ListingScan`).

A poller watching thousands of requests reads pages of the project listing every interval and needs
each item's ``id`` and ``state``; the whole request only for the few that ended. Decoding a page into
dicts (``json.loads``) was most of a trigger fleet's own CPU time; here each item stays the raw bytes
the vendor sent, beside a three-field head, and the client validates it on demand.

Everything that reads the listing to find requests (a trigger watching a batch, a fan-out's results,
a lost submission) walks it with :class:`ListingScan`: one page size, one clock-skew allowance and one
stop rule, following the pagination each answer gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from airflow_provider_edgeinfer.exceptions import MALFORMED_BODY, UnexpectedResponseError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call, Page

#: Requests asked for per listing page. A server may serve fewer (its pagination says how many, and
#: the walk follows it: :func:`~airflow_provider_edgeinfer.clients.theta.listing_goes_on`).
PAGE_SIZE = 1000
#: Tolerated difference between this machine's clock and the vendor's when judging that a listed
#: request is older than anything sought.
CLOCK_SKEW_SECONDS = 300.0


class _Head(msgspec.Struct):
    id: str
    state: str | None = None
    create_time: str | None = None


class _Pagination(msgspec.Struct):
    total: int | None = None
    number: int | None = None


class _Body(msgspec.Struct):
    infer_requests: list[msgspec.Raw] = msgspec.field(default_factory=list)
    pagination: _Pagination | None = None


class _Envelope(msgspec.Struct):
    status: Any = None
    message: Any = None
    error: Any = None
    body: _Body | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_HEAD = msgspec.json.Decoder(_Head)


class ListedRequest:
    """One request of a listing: its id, state and creation time, and its JSON left unparsed."""

    __slots__ = ("create_time", "id", "raw", "state")

    def __init__(self, id: str, state: str | None, create_time: str | None, raw: bytes) -> None:
        self.id = id
        self.state = state
        self.create_time = create_time
        self.raw = raw

    def __repr__(self) -> str:
        return f"ListedRequest(id={self.id!r}, state={self.state!r})"


def decode_listing(
    content: bytes, *, vendor: str, status: int
) -> tuple[list[ListedRequest], int | None, int | None]:
    """``(items, total, page size served)`` of a listing; a broken answer is an UnexpectedResponseError."""
    try:
        envelope = _ENVELOPE.decode(content)
        if envelope.status != "success" or envelope.body is None:
            message = envelope.message or envelope.error or f"status {envelope.status!r}"
            raise UnexpectedResponseError(
                f"HTTP {status} carried no listing: {str(message)[:200]}", vendor=vendor, http_status=status
            )
        items = []
        for raw in envelope.body.infer_requests:
            head = _HEAD.decode(raw)
            items.append(ListedRequest(head.id, head.state, head.create_time, bytes(raw)))
    # ValidationError first: it is a kind of DecodeError.
    except msgspec.ValidationError as exc:
        raise UnexpectedResponseError(
            f"a listing does not have the documented shape: {exc}", vendor=vendor, http_status=status
        ) from None
    except msgspec.DecodeError:
        raise UnexpectedResponseError(
            f"malformed JSON in a listing (HTTP {status}, {len(content)} bytes)",
            vendor=vendor,
            http_status=status,
            code=MALFORMED_BODY,
        ) from None
    pagination = envelope.body.pagination or _Pagination()
    return items, pagination.total, pagination.number


def epoch_of(value: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` allowed); None if absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ListingScan:
    """One walk down a listing, newest first, to the oldest request that can be one sought.

    Sought requests were made at or after ``since`` (this machine's clock). The walk ends at the
    first entry created before ``since`` minus :data:`CLOCK_SKEW_SECONDS` (everything further down
    is older, and is not yielded), at the listing's last page, or when the caller stops iterating
    (it found everything it wanted). An entry without a readable creation time is yielded.

    Pure: :meth:`walk` (blocking) and :meth:`awalk` (async) take the function that sends a call.
    """

    def __init__(
        self, first: Call[Page[ListedRequest]], since: float, page_size: int, state: str | None = None
    ) -> None:
        self.next_call: Call[Page[ListedRequest]] | None = first
        #: Requests asked for per page (a server may serve fewer: a walk follows its pagination).
        self.page_size = page_size
        #: The vendor state the listing was asked for (None: every state).
        self.state = state
        self.cutoff = since - CLOCK_SKEW_SECONDS
        #: Pages read so far (a cost measure for pollers and tests).
        self.pages = 0
        #: The listing's total on its first page, and whether a later page gave another: entries
        #: moved between pages during the walk, so one may have been skipped (pages are offsets).
        self.first_total: int | None = None
        self.shifted = False

    def take(self, page: Page[ListedRequest]) -> list[ListedRequest]:
        """The entries of one page within the window; decides whether another page is read."""
        self.pages += 1
        if self.pages == 1:
            self.first_total = page.total
        elif page.total != self.first_total:
            self.shifted = True
        self.next_call = page.next_call
        kept: list[ListedRequest] = []
        for entry in page.items:
            created = epoch_of(entry.create_time)
            if created is not None and created < self.cutoff:
                self.next_call = None
                break
            kept.append(entry)
        return kept

    def walk(
        self, send: Callable[[Call[Page[ListedRequest]]], Page[ListedRequest]]
    ) -> Iterator[ListedRequest]:
        while self.next_call is not None:
            yield from self.take(send(self.next_call))

    async def awalk(
        self, send: Callable[[Call[Page[ListedRequest]]], Awaitable[Page[ListedRequest]]]
    ) -> AsyncIterator[ListedRequest]:
        while self.next_call is not None:
            for entry in self.take(await send(self.next_call)):
                yield entry
