"""The two thin I/O shells that carry :class:`~airflow_provider_edgeinfer.clients.core.Call` objects.

:class:`SyncClient` serves workers, :class:`AsyncClient` serves triggers. Everything they share
(request building, answer handling, error mapping, retry rules, logging) lives in
:class:`_Shell`; the two subclasses only differ in ``await``.

Every answer is bounded (:mod:`~airflow_provider_edgeinfer.clients.limits`): its decoded size by
``max_response_bytes``, counted while it streams in, and the whole exchange by ``call_deadline``.
Any failure of the HTTP stack becomes one of the provider's errors, described from safe parts only.
:func:`download_media` streams an output's media file under its own pair of limits.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Generic, Self, TypeVar

import httpcore
import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import (
    Call,
    Credentials,
    HttpResult,
    Page,
    VendorAPI,
)
from airflow_provider_edgeinfer.clients.limits import (
    ACCEPT_ENCODING,
    DEFAULT_CALL_DEADLINE,
    DEFAULT_DOWNLOAD_DEADLINE,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    BoundedBody,
    Deadline,
    check_json_input,
    deadline_reason,
    declared_too_large,
    describe_failure,
    is_transport_failure,
    too_deep,
    too_large,
)
from airflow_provider_edgeinfer.clients.media_urls import MAX_REDIRECTS, MediaURLGuard, check_media_url
from airflow_provider_edgeinfer.clients.redact import redact_url
from airflow_provider_edgeinfer.clients.retry import RetrySettings, retry_kwargs
from airflow_provider_edgeinfer.exceptions import (
    DEADLINE_EXCEEDED,
    EdgeInferError,
    UnexpectedResponseError,
    VendorConnectionError,
    VendorTimeoutError,
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


def answer_of(api: VendorAPI, call: Call[T], result: HttpResult, secrets: tuple[str, ...]) -> T:
    """A complete answer as the call's value, or the vendor's error: one rule for every sender."""
    try:
        if not result.ok:
            raise api.map_error(call, result, secrets)
        return call.parse(result)
    except RecursionError:
        # Any parser (a vendor's listing decoder, an error body's JSON) may meet absurd nesting.
        raise too_deep(result.url, result.status, call.request_id, api.vendor) from None


def failure_of(
    api: VendorAPI,
    call: Call[Any],
    exc: BaseException,
    secrets: tuple[str, ...],
    deadline: Deadline | None = None,
) -> EdgeInferError:
    """A call with no complete answer, as the provider's error told from safe parts (every sender)."""
    if deadline is not None and deadline.passed:
        return api.transport_error(
            call,
            exc,
            secrets,
            never_sent=False,
            reason=deadline_reason(deadline.seconds, "call_deadline"),
            code=DEADLINE_EXCEEDED,
        )
    never_sent = isinstance(exc, httpx.TransportError) and _never_sent(exc)
    if not never_sent and type(exc).__module__.startswith("aiohttp"):
        import aiohttp

        # aiohttp's own errors: the lean sender's, and those httpx-aiohttp did not map (a malformed answer).
        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return api.transport_error(call, exc, secrets, never_sent=never_sent)


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, limits, pool size and retry policy of one connection."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_connections: int = 100
    retry: RetrySettings = field(default_factory=RetrySettings)
    #: Largest decoded API answer (bytes).
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: Longest API exchange (seconds), however slowly its bytes trickle in.
    call_deadline: float = DEFAULT_CALL_DEADLINE
    #: Largest media file :func:`download_media` writes (decoded bytes).
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    #: Longest media download (seconds).
    download_deadline: float = DEFAULT_DOWNLOAD_DEADLINE

    def timeout(self, read: float | None = None) -> httpx.Timeout:
        value = self.read_timeout if read is None else read
        return httpx.Timeout(connect=self.connect_timeout, read=value, write=value, pool=self.connect_timeout)

    def limits_of(self, call: Call[Any]) -> tuple[int, float]:
        """(largest answer, deadline) of ``call``: its own overrides, else the connection's.

        A call allowed a long single read (Theta ``wait``, a synchronous inference) gets at least
        that read (plus connecting) as its deadline.
        """
        size = call.max_response_bytes or self.max_response_bytes
        deadline = call.deadline or self.call_deadline
        if call.deadline is None and call.read_timeout is not None:
            deadline = max(deadline, call.read_timeout + self.connect_timeout)
        return size, deadline


#: The deadline of the exchange running in this context (sync shell): every socket read, write and
#: connect is shortened to what is left of it, so even an answer's headers cannot drip for ever.
_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "edgeinfer_deadline", default=None
)


def _clamp(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    return timeout if deadline is None else deadline.clamp(timeout)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _clamp(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_sync_client(client: httpx.Client) -> httpx.Client:
    """Make every socket operation of ``client`` (its own transport and proxy mounts) obey _DEADLINE.

    httpx has no total timeout and no public way to pass a network backend, hence the pools' backend
    is wrapped after construction; a transport without one (a test's MockTransport) is left alone.
    """
    transports: list[Any] = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


class _UploadStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body that suspends the exchange's deadline while it streams out, then restarts it."""

    def __init__(self, inner: Any, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        self._deadline.suspend()
        yield from self._inner
        self._deadline.restart()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._deadline.suspend()
        async for chunk in self._inner:
            yield chunk
        self._deadline.restart()

    def close(self) -> None:
        if isinstance(self._inner, httpx.SyncByteStream):
            self._inner.close()

    async def aclose(self) -> None:
        if isinstance(self._inner, httpx.AsyncByteStream):
            await self._inner.aclose()


def _wrap_upload(request: httpx.Request, deadline: Deadline) -> None:
    """Let a streamed body (an upload) take its time, then give the answer the whole deadline.

    A large upload legitimately takes longer than any answer; its writes stay bounded by the write
    timeout. An in-memory body goes at once and counts against the deadline like the rest.
    """
    if not isinstance(request.stream, httpx.ByteStream):
        request.stream = _UploadStream(request.stream, deadline)


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
            # Only encodings BoundedBody decodes under its size limit.
            "headers": {
                "User-Agent": f"airflow-provider-edgeinfer/{__version__}",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
        }

    def _request_kwargs(self, call: Call[Any]) -> dict[str, Any]:
        """What ``build_request`` takes for ``call`` (the auth goes to ``send``)."""
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
        return kwargs

    def _call_auth(self, call: Call[Any]) -> httpx.Auth | None:
        return self._auth if call.authenticated else None

    def _check(self, call: Call[Any]) -> None:
        """Refuse, before anything is sent, a JSON body that would not be valid JSON."""
        if call.json is not None:
            check_json_input(call.json, vendor=self.api.vendor)

    def _body(self, call: Call[Any], response: httpx.Response, limit: int) -> BoundedBody:
        url = str(response.url)
        status = response.status_code

        def overflow() -> EdgeInferError:
            error = too_large("the answer", url, limit, "max_response_bytes", status=status)
            error.vendor, error.operation, error.request_id = self.api.vendor, call.operation, call.request_id
            error.args = (error._render(),)
            return error

        if declared_too_large(response.headers, limit):
            raise overflow()
        return BoundedBody(response.headers.get("content-encoding"), limit, overflow)

    @staticmethod
    def _already_read(response: httpx.Response, body: BoundedBody) -> bytes | None:
        """The decoded body if httpx read it before us (an in-memory answer; an auth flow that reads
        every answer, as token exchange does), checked against the limit; else None."""
        try:
            content = response.content
        except httpx.ResponseNotRead:
            return None
        return body.counted(content)

    def _finish(self, call: Call[T], result: HttpResult) -> T:
        return answer_of(self.api, call, result, self._secrets)

    def _transport_error(
        self, call: Call[Any], exc: BaseException, deadline: Deadline | None = None
    ) -> EdgeInferError:
        return failure_of(self.api, call, exc, self._secrets, deadline)

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
        self._http = _bound_sync_client(httpx.Client(transport=transport, **self._client_kwargs()))

    def _send_once(self, call: Call[T]) -> T:
        self._check(call)
        limit, seconds = self.settings.limits_of(call)
        deadline = Deadline(seconds)
        token = _DEADLINE.set(deadline)
        try:
            request = self._http.build_request(**self._request_kwargs(call))
            _wrap_upload(request, deadline)
            response = self._http.send(request, auth=self._call_auth(call), stream=True)
            try:
                body = self._body(call, response, limit)
                content = self._already_read(response, body)
                if content is None:
                    content = body.read_all(response.iter_raw())
            finally:
                response.close()
            if deadline.passed:  # the last chunk came late, yet came: still past the deadline
                raise httpx.ReadTimeout("deadline")
        except EdgeInferError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            # Whatever the HTTP stack raised, told from safe parts only.
            raise self._transport_error(call, exc, deadline) from None
        finally:
            _DEADLINE.reset(token)
        return self._finish(
            call, HttpResult(response.status_code, response.headers, content, str(response.url))
        )

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

    async def send_once(self, call: Call[T]) -> T:
        """One attempt, no retry: for callers that pace and retry themselves (``ratelimit.PacedSender``)."""
        self._check(call)
        limit, seconds = self.settings.limits_of(call)
        deadline = Deadline(seconds, asyncio.get_running_loop().time)
        try:
            async with asyncio.timeout(seconds) as scope:
                deadline.on_move(
                    lambda left: scope.reschedule(
                        None if left is None else asyncio.get_running_loop().time() + left
                    )
                )
                request = self._http.build_request(**self._request_kwargs(call))
                _wrap_upload(request, deadline)
                response = await self._http.send(request, auth=self._call_auth(call), stream=True)
                try:
                    body = self._body(call, response, limit)
                    read = self._already_read(response, body)
                    if read is None:
                        parts = [piece async for raw in response.aiter_raw() for piece in body.feed(raw)]
                        parts.extend(body.finish())
                        read = b"".join(parts)
                    content = read
                finally:
                    await response.aclose()
        except EdgeInferError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            # Whatever the HTTP stack raised, told from safe parts only.
            raise self._transport_error(call, exc, deadline) from None
        return self._finish(
            call, HttpResult(response.status_code, response.headers, content, str(response.url))
        )

    async def send(self, call: Call[T]) -> T:
        async for attempt in AsyncRetrying(**self._retry_kwargs(call)):
            with attempt:
                return await self.send_once(call)
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
    token = _DEADLINE.set(deadline)
    client = _bound_sync_client(
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
        _DEADLINE.reset(token)
    return written
