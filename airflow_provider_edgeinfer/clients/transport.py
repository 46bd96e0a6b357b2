"""The two thin I/O shells that carry :class:`~airflow_provider_edgeinfer.clients.core.Call` objects.

:class:`SyncClient` serves workers, :class:`AsyncClient` serves triggers. Everything they share
(request building, answer handling, error mapping, retry rules, logging) lives in
:class:`_Shell`; the two subclasses only differ in ``await``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, Page, VendorAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings, retry_kwargs
from airflow_provider_edgeinfer.exceptions import (
    EdgeInferError,
)

log = logging.getLogger("airflow_provider_edgeinfer.clients")

A = TypeVar("A", bound=VendorAPI)
T = TypeVar("T")

#: httpx errors raised before a single byte of the request left this machine.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _never_sent(exc: httpx.TransportError) -> bool:
    """Whether ``exc`` proves the request never left this machine (so repeating it costs nothing)."""
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("aiohttp"):
        # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, including a server that
        # hung up mid-answer; aiohttp's own class tells the two apart.
        import aiohttp

        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, _NEVER_SENT)


def default_async_transport(settings: HttpSettings) -> httpx.AsyncBaseTransport | None:
    """aiohttp under the httpx API when ``httpx-aiohttp`` is installed, else None (httpx's own).

    Measured on the development machine against the emulator on loopback (3,000 GETs, 50 at a
    time): httpx's own async transport spent about 2.2 ms of CPU per request, this one about 0.3 ms
    (aiohttp alone 0.08 ms); a triggerer polling thousands of requests spends most of its CPU there.
    Errors keep their meaning: :func:`_never_sent` judges them by aiohttp's own classes.
    """
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None

    def session() -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that owns this client.
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections, ssl=httpx.create_ssl_context(), keepalive_timeout=30
        )
        # trust_env: honour HTTP(S)_PROXY / NO_PROXY as httpx's own transport does.
        return aiohttp.ClientSession(connector=connector, trust_env=True)

    return AiohttpTransport(client=session)


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, pool size and retry policy of one connection."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_connections: int = 100
    retry: RetrySettings = field(default_factory=RetrySettings)

    def timeout(self, read: float | None = None) -> httpx.Timeout:
        value = self.read_timeout if read is None else read
        return httpx.Timeout(connect=self.connect_timeout, read=value, write=value, pool=self.connect_timeout)


class _SyncBody:
    """A streamed body httpx may iterate again (it is not a generator, so httpx allows a replay)."""

    def __init__(self, factory: Callable[[], Iterator[bytes]]) -> None:
        self._factory = factory

    def __iter__(self) -> Iterator[bytes]:
        return self._factory()


class _AsyncBody:
    """The same for AsyncClient; each chunk is produced off the event loop (it may read a file)."""

    def __init__(self, factory: Callable[[], Iterator[bytes]]) -> None:
        self._factory = factory

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._factory()
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            yield chunk


class _Shell(Generic[A]):
    """What the sync and async shells share: everything but the awaiting."""

    def __init__(
        self,
        api: A,
        credentials: Credentials | None,
        settings: HttpSettings | None = None,
        *,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.api = api
        self.settings = settings or HttpSettings()
        self._secrets = credentials.values() if credentials else ()
        self._auth = auth if auth is not None else (api.build_auth(credentials) if credentials else None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vendor={self.api.vendor!r})"

    @property
    def auth(self) -> httpx.Auth | None:
        return self._auth

    def _client_kwargs(self) -> dict[str, Any]:
        limits = httpx.Limits(
            max_connections=self.settings.max_connections,
            max_keepalive_connections=self.settings.max_connections,
        )
        return {
            "timeout": self.settings.timeout(),
            "limits": limits,
            "follow_redirects": False,
            "headers": {"User-Agent": f"airflow-provider-edgeinfer/{__version__}"},
        }

    def _request_kwargs(self, call: Call[Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": call.method, "url": call.url}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.params:
            kwargs["params"] = {k: v for k, v in call.params.items() if v is not None}
        if call.headers:
            kwargs["headers"] = dict(call.headers)
        if call.content is not None:
            kwargs["content"] = call.content
        if call.files is not None:
            kwargs["files"] = call.files
        if call.data is not None:
            kwargs["data"] = call.data
        if call.stream is not None:
            body = _AsyncBody if isinstance(self, AsyncClient) else _SyncBody
            kwargs["content"] = body(call.stream)
        if call.read_timeout is not None:
            kwargs["timeout"] = self.settings.timeout(call.read_timeout)
        kwargs["auth"] = self._auth if call.authenticated else None
        return kwargs

    def _finish(self, call: Call[T], response: httpx.Response) -> T:
        result = HttpResult(response.status_code, response.headers, response.content, str(response.url))
        if not result.ok:
            raise self.api.map_error(call, result, self._secrets)
        return call.parse(result)

    def _transport_error(self, call: Call[Any], exc: httpx.TransportError) -> EdgeInferError:
        return self.api.transport_error(call, exc, self._secrets, never_sent=_never_sent(exc))

    def _retry_kwargs(self, call: Call[Any]) -> dict[str, Any]:
        settings = self.settings.retry

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.upcoming_sleep
            log.warning(
                "%s %s: %s; retrying in %.1fs (attempt %d of %d)",
                self.api.vendor,
                call.operation,
                error,
                wait,
                state.attempt_number + 1,
                settings.max_attempts,
            )

        return retry_kwargs(call.safety, settings, before_sleep=before_sleep)


class SyncClient(_Shell[A]):
    """Blocking shell for workers: ``client.send(api.some_call(...))``."""

    def __init__(
        self,
        api: A,
        credentials: Credentials | None,
        settings: HttpSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        super().__init__(api, credentials, settings, auth=auth)
        self._http = httpx.Client(transport=transport, **self._client_kwargs())

    def _send_once(self, call: Call[T]) -> T:
        try:
            response = self._http.request(**self._request_kwargs(call))
        except httpx.TransportError as exc:
            raise self._transport_error(call, exc) from None
        return self._finish(call, response)

    def send(self, call: Call[T]) -> T:
        for attempt in Retrying(**self._retry_kwargs(call)):
            with attempt:
                return self._send_once(call)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def pages(self, first: Call[Page[T]]) -> Iterator[Page[T]]:
        call: Call[Page[T]] | None = first
        while call is not None:
            page = self.send(call)
            yield page
            call = page.next_call

    def iterate(self, first: Call[Page[T]]) -> Iterator[T]:
        """Every item of a listing, one page in memory at a time."""
        for page in self.pages(first):
            yield from page.items

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Shell[A]):
    """Non-blocking shell for triggers: ``await client.send(api.some_call(...))``."""

    def __init__(
        self,
        api: A,
        credentials: Credentials | None,
        settings: HttpSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        super().__init__(api, credentials, settings, auth=auth)
        if transport is None:
            transport = default_async_transport(self.settings)
        self._http = httpx.AsyncClient(transport=transport, **self._client_kwargs())

    async def _send_once(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(**self._request_kwargs(call))
        except httpx.TransportError as exc:
            raise self._transport_error(call, exc) from None
        return self._finish(call, response)

    async def send(self, call: Call[T]) -> T:
        async for attempt in AsyncRetrying(**self._retry_kwargs(call)):
            with attempt:
                return await self._send_once(call)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def pages(self, first: Call[Page[T]]) -> AsyncIterator[Page[T]]:
        call: Call[Page[T]] | None = first
        while call is not None:
            page = await self.send(call)
            yield page
            call = page.next_call

    async def iterate(self, first: Call[Page[T]]) -> AsyncIterator[T]:
        async for page in self.pages(first):
            for item in page.items:
                yield item

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
