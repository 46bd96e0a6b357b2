"""Media downloads (:func:`download_media`), and where one may go: https anywhere, plain http only on
loopback (the emulator).

Vendor answers name media URLs, and a media server may redirect: every hop is held to the same
rule as the first, checked before anything connects to it, so neither an answer nor a redirect can
make a worker fetch a plain-http address, an internal service (``http://169.254.169.254/``) or a
``file://`` URL. :class:`MediaURLGuard` is an httpx ``request`` event hook (httpx calls those for
the first request and for each redirect it follows, before sending).
"""

from __future__ import annotations

from typing import IO
from urllib.parse import urlsplit

import httpx

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import is_loopback
from airflow_provider_edgeinfer.clients.redact import (
    deadline_reason,
    describe_failure,
    is_transport_failure,
    redact_url,
    too_large,
)
from airflow_provider_edgeinfer.clients.transport import (
    ACCEPT_ENCODING,
    EXCHANGE_DEADLINE,
    BoundedBody,
    Deadline,
    HttpSettings,
    bound_sync_client,
    declared_too_large,
)
from airflow_provider_edgeinfer.exceptions import (
    DEADLINE_EXCEEDED,
    EdgeInferError,
    UnexpectedResponseError,
    VendorConnectionError,
    VendorTimeoutError,
)

#: Redirects followed per media download, each checked like the first URL.
MAX_REDIRECTS = 5


def _shown(url: str) -> str:
    scheme = urlsplit(url).scheme
    return redact_url(url) if scheme in ("http", "https") else f"a {scheme or 'schemeless'} URL"


def check_media_url(url: str, *, redirected_from: str | None = None, vendor: str | None = None) -> None:
    """Refuse a media URL (or a redirect hop) that is not https, or plain http on loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and is_loopback(host)):
        return
    if redirected_from is None:
        message = f"refusing to download media from {_shown(url)} (https required outside loopback)"
    else:
        message = (
            f"refusing to follow the redirect from {redact_url(redirected_from)} to {_shown(url)} "
            "(https required outside loopback)"
        )
    raise UnexpectedResponseError(message, vendor=vendor)


class MediaURLGuard:
    """``httpx.Client(event_hooks={"request": [MediaURLGuard()]})``: one guard per download.

    The first request it sees is the URL asked for; each later one is a redirect hop from the one
    before, which the refusal names.
    """

    def __init__(self, vendor: str | None = None) -> None:
        self.vendor = vendor
        self._previous: str | None = None

    def __call__(self, request: httpx.Request) -> None:
        url = str(request.url)
        check_media_url(url, redirected_from=self._previous, vendor=self.vendor)
        self._previous = url


__all__ = ["MAX_REDIRECTS", "MediaURLGuard", "check_media_url"]


def download_media(
    url: str,
    out: IO[bytes],
    settings: HttpSettings | None = None,
    *,
    vendor: str | None = None,
    chunk_size: int = 1024 * 1024,
) -> int:
    """Stream the media at ``url`` into ``out``; returns the decoded bytes written.

    No credential goes along (media URLs are presigned or public); redirects are followed. The
    download is bounded by ``settings.max_download_bytes`` (counted decoded, as it streams, so
    a compressed bomb stops after about that many bytes) and ``settings.download_deadline``.
    On an error the bytes already written stay in ``out``: the caller discards the file.
    """
    settings = settings or HttpSettings()
    where = redact_url(url)
    check_media_url(url, vendor=vendor)
    limit = settings.max_download_bytes
    deadline = Deadline(settings.download_deadline)
    written = 0
    token = EXCHANGE_DEADLINE.set(deadline)
    client = bound_sync_client(
        httpx.Client(
            timeout=settings.timeout(),
            follow_redirects=True,
            # Every redirect hop is held to the rule of the first URL, before it is connected to.
            max_redirects=MAX_REDIRECTS,
            event_hooks={"request": [MediaURLGuard(vendor)]},
            headers={
                "User-Agent": f"airflow-provider-edgeinfer/{__version__}",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
        )
    )
    try:
        with client, client.stream("GET", url) as response:
            if response.status_code != 200:
                final = redact_url(str(response.url))  # after redirects
                raise UnexpectedResponseError(
                    f"media download from {final} answered HTTP {response.status_code}",
                    vendor=vendor,
                    http_status=response.status_code,
                )

            def overflow() -> EdgeInferError:
                error = too_large("the media file", url, limit, "max_download_bytes")
                error.vendor = vendor
                error.args = (error._render(),)
                return error

            if declared_too_large(response.headers, limit):
                raise overflow()
            body = BoundedBody(response.headers.get("content-encoding"), limit, overflow)
            for raw in response.iter_raw(chunk_size):
                for piece in body.feed(raw):
                    out.write(piece)
                if deadline.passed:
                    raise httpx.ReadTimeout("deadline")
            for piece in body.finish():
                out.write(piece)
            written = body.size
    except EdgeInferError:
        raise
    except httpx.TooManyRedirects:
        raise UnexpectedResponseError(
            f"media download from {where} redirected more than {MAX_REDIRECTS} times", vendor=vendor
        ) from None
    except Exception as exc:
        if not is_transport_failure(exc):
            raise
        if isinstance(exc, httpx.RemoteProtocolError) and "location" in str(exc).lower():
            # A redirect whose Location httpx cannot even parse: the answer's fault, not the network's.
            raise UnexpectedResponseError(
                f"media download from {where} redirected to an invalid URL", vendor=vendor
            ) from None
        reason = deadline_reason(deadline.seconds, "download_deadline") if deadline.passed else None
        what = describe_failure(exc, "GET", url, reason=reason)
        cls = VendorConnectionError if isinstance(exc, httpx.ConnectError) else VendorTimeoutError
        raise cls(
            f"media download from {where} failed ({what})",
            vendor=vendor,
            code=DEADLINE_EXCEEDED if deadline.passed else None,
        ) from None
    finally:
        EXCHANGE_DEADLINE.reset(token)
    return written
