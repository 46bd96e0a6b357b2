"""A lean aiohttp shell for many small calls in a row (the BatchOperator's fan-out).

It carries the same :class:`~airflow_provider_edgeinfer.clients.core.Call` objects as the httpx
shells, with the same answer handling (``api.map_error`` / ``call.parse``) and the same judgement of
transport errors, but skips httpx's request and header models, which cost more CPU per request
than the whole aiohttp exchange (measured by ``benchmarks/batch_fanout.py``). One attempt per
``send``: the fan-out's paced sender (``clients/retry.py``) owns retries and the 429 pause.

It serves only what it can serve exactly like the httpx shells: JSON or raw bodies, and a bearer
key sent to the connection's own hosts (``*.domain`` patterns included). :func:`supports` says
whether a call qualifies; anything else (token-exchange auth, multipart, streams) goes through the
httpx ``AsyncClient``, which the sender itself hands such a call to: the fan-out chooses its sender
by one probe call, and a later call of another shape must still be sent as the httpx shells send it
(``tests/clients/test_stack_conformance.py`` compares the requests both stacks send). It applies
the connection's ``HttpSettings`` as that client does: timeouts, proxies from the environment, the
answer's size limit counted as it is decoded, the total deadline, and transport errors told from
safe parts only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import (
    Call,
    Credentials,
    HttpResult,
    VendorAPI,
    host_allowed,
    host_of,
)
from airflow_provider_edgeinfer.clients.presigned import WHOLE_BODY_BYTES, read_whole
from airflow_provider_edgeinfer.clients.redact import is_transport_failure, redact_url, too_large
from airflow_provider_edgeinfer.clients.retry import failure_of
from airflow_provider_edgeinfer.clients.transport import (
    ACCEPT_ENCODING,
    AsyncBody,
    BoundedBody,
    Deadline,
    HttpSettings,
    UploadStream,
    answer_of,
    check_json_input,
    declared_too_large,
)
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
)

T = TypeVar("T")
V = TypeVar("V")


def supports(api: VendorAPI, call: Call[Any]) -> bool:
    """Whether :class:`LeanSender` sends ``call`` exactly as the httpx shells would."""
    if call.files is not None or call.data is not None:
        return False
    if not call.authenticated:
        # A presigned upload: its own session, which carries no key, streams the file.
        return True
    if call.stream is not None:
        return False
    # Only the default auth (a bearer key) is reproduced; vendors with their own flow keep httpx.
    return type(api).build_auth is VendorAPI.build_auth


class LeanSender:
    """``async with LeanSender(api, credentials, limit) as sender: job = await sender.send(call)``."""

    def __init__(
        self,
        api: VendorAPI,
        credentials: Credentials,
        limit: int,
        *,
        read_timeout: float | None = None,
        settings: HttpSettings | None = None,
    ) -> None:
        self.api = api
        self._secrets = credentials.values()
        self._authorization = f"Bearer {credentials.api_key.get_secret_value()}"
        self._allowed = api.allowed_hosts()
        self._limit = limit
        settings = settings or HttpSettings()
        self.settings = settings if read_timeout is None else _with_read_timeout(settings, read_timeout)
        self._session: Any = None
        self._connector: Any = None
        #: For calls that carry no key (presigned uploads to a store), opened at the first one.
        self._anonymous: Any = None
        self._credentials = credentials
        self._fallback: Any = None
        #: Per origin (``scheme://host:port``), what is judged once: its proxy from the environment
        #: (:meth:`_proxy`) and whether the key may go there (:meth:`_check`).
        self._proxies: dict[str, tuple[Any, Any]] = {}
        self._keyed_origins: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"LeanSender(vendor={self.api.vendor!r})"

    async def __aenter__(self) -> Self:
        import aiohttp

        # One pool for both sessions (the keyed one and the one for presigned uploads): the
        # fan-out's width bounds every connection it opens.
        self._connector = aiohttp.TCPConnector(
            limit=self._limit, ssl=httpx.create_ssl_context(), keepalive_timeout=30
        )
        self._session = self._open_session(authorized=True)
        return self

    def _open_session(self, *, authorized: bool) -> Any:
        import aiohttp

        # The key is a session header (merging it into every request's headers costs more CPU than
        # the rest of the request); every call is checked against the allowed hosts before it goes.
        # Bodies are decoded here, under the size limit (auto_decompress would inflate them whole).
        # Proxies come from :meth:`_proxy`, not trust_env: aiohttp's trust_env reads the environment
        # (and .netrc) in a worker thread on every request, which cut the fan-out's throughput to a
        # third (benchmarks/batch_fanout.py).
        headers = {
            "User-Agent": f"airflow-provider-edgeinfer/{__version__}",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if authorized:
            headers["Authorization"] = self._authorization
        return aiohttp.ClientSession(
            connector=self._connector,
            connector_owner=False,
            headers=headers,
            timeout=self._timeout(None),
            auto_decompress=False,
            trust_env=False,
            json_serialize=_strict_json,
        )

    def _timeout(self, read: float | None) -> Any:
        """The httpx shells' timeouts in aiohttp's terms (as httpx-aiohttp maps them)."""
        import aiohttp

        settings = self.settings
        return aiohttp.ClientTimeout(
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout if read is None else read,
            connect=settings.connect_timeout,
        )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.close()
        if self._anonymous is not None:
            await self._anonymous.close()
        await self._connector.close()
        if self._fallback is not None:
            await self._fallback.aclose()

    async def _send_by_httpx(self, call: Call[T]) -> T:
        """A call this sender cannot reproduce, sent by the httpx shell on the same settings.

        Without this, a multipart call went out without its body and a token-exchange vendor's call
        carried the raw API key as a bearer token, where the httpx shells exchange it first.
        """
        from airflow_provider_edgeinfer.clients.transport import AsyncClient

        if self._fallback is None:
            self._fallback = AsyncClient(self.api, self._credentials, self.settings)
        result: T = await self._fallback.send(call)
        return result

    def _proxy(self, url: str) -> tuple[Any, Any]:
        """``(proxy, proxy_auth)`` for ``url`` from HTTP(S)_PROXY / NO_PROXY, as the httpx shells honour
        them; ``(None, None)`` for a direct connection. Read once per origin: the environment does not
        change during a fan-out."""
        return per_origin(self._proxies, url, _env_proxy)

    def _session_for(self, call: Call[Any]) -> Any:
        if call.authenticated:
            return self._session
        if self._anonymous is None:
            self._anonymous = self._open_session(authorized=False)
        return self._anonymous

    def _check(self, call: Call[Any]) -> None:
        if call.json is not None:
            check_json_input(call.json, vendor=self.api.vendor)
        if not call.authenticated:
            return  # no key goes with it (the presigned URL was checked when the call was made)
        # The same guard as the httpx shells' BearerAuth (OctoAI's *.domain deployment hosts),
        # judged once per origin: a fan-out's keyed calls all go to one or two.
        allowed = per_origin(self._keyed_origins, call.url, lambda o: host_allowed(host_of(o), self._allowed))
        if not allowed:
            raise ConfigurationError(
                f"refusing to send the {self.api.vendor} credential to {redact_url(call.url)}",
                vendor=self.api.vendor,
            )

    async def send(self, call: Call[T]) -> T:
        if not supports(self.api, call):
            return await self._send_by_httpx(call)
        self._check(call)
        kwargs: dict[str, Any] = {}
        if call.json is None:
            # httpx sends no Content-Type but the call's own: aiohttp would add
            # application/octet-stream to a bodiless POST (Theta's cancel) and to raw bytes.
            kwargs["skip_auto_headers"] = ("Content-Type",)
        if call.headers:
            kwargs["headers"] = dict(call.headers)
        if call.json is not None:
            kwargs["json"] = call.json
        elif call.content is not None:
            kwargs["data"] = call.content
        if call.params:
            kwargs["params"] = {k: str(v) for k, v in call.params.items() if v is not None}
        if call.read_timeout is not None:
            kwargs["timeout"] = self._timeout(call.read_timeout)
        proxy, proxy_auth = self._proxy(call.url)
        if proxy is not None:
            kwargs["proxy"], kwargs["proxy_auth"] = proxy, proxy_auth
        limit, seconds = self.settings.limits_of(call)
        deadline = Deadline(seconds, asyncio.get_running_loop().time)
        budget = asyncio.timeout(seconds)
        if call.stream is not None:
            size = int((call.headers or {}).get("Content-Length", -1))
            if 0 <= size <= WHOLE_BODY_BYTES:
                # Read whole, off the loop, in one go: aiohttp drops the connection after a streamed
                # body now and then (a connection opened per three small uploads, where bytes keep one).
                kwargs["data"] = await asyncio.to_thread(read_whole, call.stream)
            else:
                # As the httpx shells: the deadline waits while the file goes out (read off the loop).
                loop = asyncio.get_running_loop()
                deadline.on_move(lambda left: budget.reschedule(None if left is None else loop.time() + left))
                kwargs["data"] = UploadStream(AsyncBody(call.stream), deadline)
        session = self._session_for(call)
        try:
            async with (
                budget,
                session.request(call.method, call.url, allow_redirects=False, **kwargs) as response,
            ):
                headers = response.headers

                def overflow() -> EdgeInferError:
                    error = too_large(
                        "the answer", call.url, limit, "max_response_bytes", status=response.status
                    )
                    error.vendor, error.operation = self.api.vendor, call.operation
                    error.request_id = call.request_id
                    error.args = (error._render(),)
                    return error

                if declared_too_large(headers, limit):
                    raise overflow()
                body = BoundedBody(headers.get("content-encoding"), limit, overflow)
                parts = [piece async for raw in response.content.iter_any() for piece in body.feed(raw)]
                parts.extend(body.finish())
                result = HttpResult(response.status, headers, b"".join(parts), call.url)
        except EdgeInferError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            raise failure_of(self.api, call, exc, self._secrets, deadline) from None
        return answer_of(self.api, call, result, self._secrets)


#: Origins whose proxy and key check a sender remembers; past this many it starts afresh.
MAX_ORIGINS = 256


def origin_of(url: str) -> str:
    """``scheme://netloc`` of ``url``, by slicing: a key for what is judged once per origin (parsing
    every call's URL cost a few per cent of a fan-out). Judged from the origin itself, so a URL it
    cannot slice (no ``://``) is its own key."""
    start = url.find("://")
    if start < 0:
        return url
    end = len(url)
    for separator in "/?#":
        found = url.find(separator, start + 3)
        if 0 <= found < end:
            end = found
    return url[:end]


def per_origin(table: dict[str, V], url: str, judge: Callable[[str], V]) -> V:
    """``judge(origin)`` for ``url``'s origin, remembered in ``table``; a full table starts afresh
    (a vendor naming a new host per file keeps no table)."""
    origin = origin_of(url)
    if origin not in table:
        if len(table) >= MAX_ORIGINS:
            table.clear()
        table[origin] = judge(origin)
    return table[origin]


def _env_proxy(origin: str) -> tuple[Any, Any]:
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(origin))
    except LookupError:
        return (None, None)


def _strict_json(value: Any) -> str:
    """JSON as httpx writes it: NaN and infinity refused (``_check`` names the field first)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _with_read_timeout(settings: HttpSettings, read_timeout: float) -> HttpSettings:
    from dataclasses import replace

    return replace(settings, read_timeout=read_timeout)
