"""Theta project listings read for their states: a thousand requests a page, each parsed only if needed.

A poller watching thousands of requests reads pages of the project listing every interval and needs
each item's ``id`` and ``state``; the whole request only for the few that ended. Decoding a page into
dicts (``json.loads``) was most of a trigger fleet's own CPU time; here each item stays the raw bytes
the vendor sent, beside a three-field head, and :meth:`ListedRequest.request` validates it on demand.
"""

from __future__ import annotations

from typing import Any

import msgspec

from airflow_provider_edgeinfer.exceptions import MALFORMED_BODY, UnexpectedResponseError


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
