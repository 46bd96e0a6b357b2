"""Secrets handed to Airflow's secrets masker, so Airflow itself redacts them wherever it writes.

Airflow masks a connection's password itself whenever it hands a connection out, in a task and in
the triggerer; a key or secret kept in an extra, and what Airflow never sees (the OmniTensor token
exchanged for the key, presigned-URL signatures), is given to ``mask_secret`` here as soon as it is
read or received. Every log line, rendered template and exception Airflow prints then shows
``***`` instead, in the task process and in the supervisor (which the task tells). Text Airflow never
sees (an exception's message kept in a trigger event, an XCom) is cleaned by
:mod:`~airflow_provider_edgeinfer.clients.redact` instead.

Outside Airflow (the emulator, a plain script) there is no masker and nothing happens.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from urllib.parse import parse_qsl, urlsplit

#: Shorter values are not masked: Airflow would replace them inside every ordinary word.
MIN_SECRET_LENGTH = 5

#: Query parameters of a presigned URL that carry or sign the credential (S3, GCS, Azure, CloudFront).
_SIGNED_QUERY_KEYS = re.compile(r"(?i)(signature|^sig$|token|credential|^policy$)")


#: One masking call at a time from this process's threads (uploads mask each presigned URL from a
#: pool): Airflow 3.1's task-to-supervisor channel has no lock of its own, so two threads sending at
#: once interleave their frames and the task hangs waiting for an answer (3.2 added the lock).
#: Never taken on a thread running an event loop: see :func:`_serialized`.
_MASK_LOCK = threading.Lock()


def _serialized() -> AbstractContextManager[object]:
    """:data:`_MASK_LOCK`, except on a thread that runs an event loop.

    In the triggerer a sync ``mask_secret`` from the loop's thread hands its send to the running
    loop (greenback's portal) and the loop goes on with other triggers meanwhile: holding the lock
    across it, the next trigger to mask a value on the same thread would wait for a lock its own
    thread holds, and the loop (every trigger of that triggerer) would stop for good. Calls on one
    loop's thread cannot overlap anyway; the lock is for threads that are not that loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _MASK_LOCK
    return nullcontext()


@cache
def _masker() -> Callable[[str], None] | None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        return None
    return mask_secret


@cache
def _async_masker() -> Callable[[str], Awaitable[None]] | None:
    try:
        from airflow.sdk.log import amask_secret  # Airflow 3.3 and later
    except ImportError:
        return None
    return amask_secret


def mask(*values: str | None) -> None:
    """Have Airflow redact each value (long enough to be a secret) from everything it writes."""
    masker = _masker()
    if masker is None:
        return
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            with _serialized():
                masker(value)


async def amask(*values: str | None) -> None:
    """:func:`mask` from an event loop: tells the supervisor without blocking the loop (the triggerer).

    Where Airflow has no async masker, the value is masked in this process (a sync send from the
    triggerer's loop could wait on itself).
    """
    amasker = _async_masker()
    if amasker is None:
        _mask_locally(*values)
        return
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            await amasker(value)


def _mask_locally(*values: str | None) -> None:
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:
        return
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            _secrets_masker().add_mask(value)


def url_signatures(url: str) -> list[str]:
    """The values of ``url``'s query that sign or carry its credential (not its expiry or date)."""
    try:
        query = parse_qsl(urlsplit(url).query)
    except ValueError:
        return []
    return [value for key, value in query if _SIGNED_QUERY_KEYS.search(key)]


#: Presigned URLs whose signatures are handed to Airflow's masker value by value, per process. Each
#: new value makes Airflow recompile one regex of every secret it holds: per value the cost grows
#: with the count, so a back-fill's uploads (one URL per file) would cost quadratic time (measured:
#: 2,000 signatures took 283 s) and memory. Past this many, signatures are masked by their place in
#: a URL (:data:`SIGNED_QUERY_VALUE`), one pattern whatever the count.
MAX_MASKED_URLS = 64

#: A signed query value inside URL text (``...&X-Amz-Signature=<value>``): what Airflow's masker
#: replaces once a process has handed it :data:`MAX_MASKED_URLS` URLs. Fixed-width look-behinds keep
#: the parameter's name readable; over-masking (any ``...token=``) is the safe side.
SIGNED_QUERY_VALUE = (
    r"(?i:(?:(?<=signature=)|(?<=token=)|(?<=credential=)|(?<=[?&]sig=)|(?<=[?&]policy=))"
    r"[^&\s\"'<>]+)"
)

_masked_urls = 0
#: Upload threads count URLs at once: each must see a count of its own.
_COUNT_LOCK = threading.Lock()


def mask_url(url: str) -> None:
    """Have Airflow redact a presigned URL's signature wherever the URL shows up.

    The first :data:`MAX_MASKED_URLS` signatures are masked as values (even out of their URL); every
    later one by :data:`SIGNED_QUERY_VALUE`, registered once, in any URL text Airflow writes.
    """
    global _masked_urls
    with _COUNT_LOCK:
        _masked_urls += 1
        by_value = _masked_urls <= MAX_MASKED_URLS
    if by_value:
        mask(*url_signatures(url))
    else:
        # Asked for every later URL (a set lookup once registered): a thread must not use its URL
        # before the pattern covers it, and no count read at the wrong moment can skip registering.
        _mask_pattern(SIGNED_QUERY_VALUE)


def _mask_pattern(pattern: str) -> None:
    """Add a regex to this process's Airflow masker (its public API takes literal values only)."""
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:
        return
    masker = _secrets_masker()
    with _MASK_LOCK:  # one provider thread in the masker at a time, as for values
        if pattern not in masker.patterns:
            masker.patterns.add(pattern)
            masker.replacer = re.compile("|".join(masker.patterns))
