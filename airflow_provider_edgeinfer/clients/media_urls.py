"""Where a media download may go: https anywhere, plain http only on loopback (the emulator).

Vendor answers name media URLs, and a media server may redirect: every hop is held to the same
rule as the first, checked before anything connects to it, so neither an answer nor a redirect can
make a worker fetch a plain-http address, an internal service (``http://169.254.169.254/``) or a
``file://`` URL. :class:`MediaURLGuard` is an httpx ``request`` event hook (httpx calls those for
the first request and for each redirect it follows, before sending).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_edgeinfer.clients.core import is_loopback
from airflow_provider_edgeinfer.clients.redact import redact_url
from airflow_provider_edgeinfer.exceptions import UnexpectedResponseError

if TYPE_CHECKING:
    import httpx

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
