"""The two thin I/O shells that carry :class:`~airflow_provider_edgeinfer.clients.core.Call` objects.

:class:`SyncClient` serves workers, :class:`AsyncClient` serves triggers. Everything they share
(request building, answer handling, error mapping, retry rules, logging) lives in
:class:`_Shell`; the two subclasses only differ in ``await``.

Every answer is bounded, the same way for both HTTP stacks (the lean fan-out sender of
:mod:`~airflow_provider_edgeinfer.clients.aiosend` included): its decoded size by
``max_response_bytes``, counted while it streams in, and the whole exchange by ``call_deadline``.
An answer is read as raw bytes and decoded here (gzip / deflate) with the decoded size counted as it
grows, so a body past its limit, or a small gzip bomb, is abandoned after about ``limit`` bytes
instead of inflating whole in memory (:class:`BoundedBody`). A :class:`Deadline` bounds one exchange
from its start (or from the end of an upload's body) to the last byte of the answer, which per-read
timeouts cannot do against an answer that drips one byte at a time. A failed exchange is described
only by safe, fixed words (:func:`~airflow_provider_edgeinfer.clients.redact.describe_failure`):
never ``str`` or ``repr`` of an HTTP library's exception, which may hold the request's headers (the
credential) or bytes the server chose.
Any failure of the HTTP stack becomes one of the provider's errors.

A call is sent once; only when that attempt fails does the one retry policy
(:mod:`~airflow_provider_edgeinfer.clients.retry`) decide whether and when to send it again, within
the connection's :class:`~airflow_provider_edgeinfer.clients.retry.RetrySettings`.

**One pause per connection.** Every sender of one connection (the fan-out's senders, the batch
watcher's reads, the poller's reads) waits on the same :class:`RateLimiter` before each attempt
(:func:`limiter_for`: every user of one shared client, in the triggerer every trigger of a
connection, gets the same one), so one 429 slows all of them at once, for as long as the vendor's
``Retry-After`` asks, instead of each backing off on its own and the others carrying on at full rate.
:func:`~airflow_provider_edgeinfer.clients.media_urls.download_media` streams an output's media file
under its own pair of limits, with these same bounds.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import ssl
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpcore
import httpx
from tenacity import AsyncRetrying, Retrying

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import (
    Call,
    Credentials,
    HttpResult,
    Page,
    VendorAPI,
    too_deep,
)
from airflow_provider_edgeinfer.clients.redact import is_transport_failure, too_large
from airflow_provider_edgeinfer.clients.retry import RetrySettings, announce_retries, failure_of, retry_kwargs
from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    EdgeInferError,
    InputValidationError,
    UnexpectedResponseError,
)

A = TypeVar("A", bound=VendorAPI)
T = TypeVar("T")

# -- bounds on every answer: size and time ----------------------------------------------------

#: Largest decoded API answer. The biggest legitimate ones are a few MB (a Theta listing page of
#: 1,000 requests, an OctoAI image returned inline as base64, an infrai export page); 64 MiB leaves
#: an order of magnitude of room while a hostile or broken answer costs at most that (plus about as
#: much again while it is parsed) in a worker or a triggerer shared by thousands of triggers.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Largest media file downloaded from an output URL. Generated media (images, a few minutes of
#: audio or video) weighs MBs to hundreds of MBs; 2 GiB bounds the disk a hostile URL can fill.
DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024 * 1024
#: Longest API exchange, connect to last byte. Vendor calls answer within seconds, and those that
#: legitimately wait longer (Theta ``wait``, OmniTensor's synchronous inference) carry their own
#: read timeout, which extends this; 300 s stops only an answer that never ends.
DEFAULT_CALL_DEADLINE = 300.0
#: Longest media download: 2 GiB at about 1 MB/s fits, a drip never ends.
DEFAULT_DOWNLOAD_DEADLINE = 3600.0

#: Nesting a JSON input may have; deeper would blow the encoder's recursion (nothing legitimate nests
#: so deep) and deeper answers are refused by the decoders' own recursion limit.
MAX_INPUT_DEPTH = 500

#: Content-encodings decoded here (httpx advertises exactly these without brotli or zstandard).
ACCEPT_ENCODING = "gzip, deflate"


#: Most bytes one decompression step produces, so a bomb never inflates more than this at once.
_PIECE = 1024 * 1024


class _Inflate:
    """One content-encoding stage (gzip, or zlib / raw deflate)."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._started = False
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16)

    def _step(self, data: bytes) -> bytes:
        try:
            out = self._obj.decompress(data, _PIECE)
        except zlib.error:
            if not (self._deflate and not self._started):
                raise
            # "deflate" is meant to be zlib-wrapped but some servers send it raw (httpx accepts both).
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(data, _PIECE)
        self._started = True
        return out

    def pieces(self, data: bytes) -> Iterator[bytes]:
        out = self._step(data)
        yield out
        while self._obj.unconsumed_tail:
            yield self._step(self._obj.unconsumed_tail)

    def flush(self) -> bytes:
        return self._obj.flush()


class BoundedBody:
    """Decodes an answer's body as its raw chunks arrive and refuses more than ``limit`` decoded bytes.

    ``overflow()`` builds the error raised once the limit is passed. Decoding goes at most 1 MiB at a
    time through every stage of a (possibly chained) encoding, each stage bounded by ``limit`` too,
    so a compressed bomb costs about 1 MiB of memory per step and stops after about ``limit`` bytes.
    """

    def __init__(
        self, content_encoding: str | None, limit: int, overflow: Callable[[], EdgeInferError]
    ) -> None:
        names = [e.strip().lower() for e in (content_encoding or "").split(",")]
        names = [e for e in names if e and e != "identity"]
        unknown = [e for e in names if e not in ("gzip", "x-gzip", "deflate")]
        if unknown:
            raise UnexpectedResponseError(
                f"the answer uses content-encoding {unknown[0][:40]!r}, which was not asked for",
                code=MALFORMED_BODY,
            )
        # Undone in the reverse order of application.
        self._stages = [_Inflate("deflate" if e == "deflate" else "gzip") for e in reversed(names)]
        self._made = [0] * len(self._stages)
        self._limit = limit
        self._overflow = overflow
        self.size = 0

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            yield self._count(data)
            return
        for piece in self._stages[index].pieces(data):
            self._made[index] += len(piece)
            if self._made[index] > self._limit:
                raise self._overflow()
            if piece:
                yield from self._through(index + 1, piece)

    def _guarded(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from pieces
        except zlib.error:
            raise UnexpectedResponseError(
                "the answer's compressed body could not be decoded", code=MALFORMED_BODY
            ) from None

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``raw``; raises once the decoded total passes the limit."""
        return self._guarded(self._through(0, raw))

    def finish(self) -> Iterator[bytes]:
        """What the decoders still hold once the raw body has ended."""

        def flushed() -> Iterator[bytes]:
            for index, stage in enumerate(self._stages):
                tail = stage.flush()
                if tail:
                    self._made[index] += len(tail)
                    if self._made[index] > self._limit:
                        raise self._overflow()
                    yield from self._through(index + 1, tail)

        return self._guarded(flushed())

    def read_all(self, chunks: Iterable[bytes]) -> bytes:
        """Every decoded byte of ``chunks`` (the raw body), joined."""
        parts = [piece for raw in chunks for piece in self.feed(raw)]
        parts.extend(self.finish())
        return b"".join(parts)

    def counted(self, decoded: bytes) -> bytes:
        """``decoded`` (a body some other code already read and decoded), checked against the limit."""
        return self._count(decoded)

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self._limit:
            raise self._overflow()
        return data


def declared_too_large(headers: Any, limit: int) -> bool:
    """Whether an unencoded answer's Content-Length already says it is past ``limit``."""
    if (headers.get("content-encoding") or "identity").strip().lower() != "identity":
        return False
    try:
        return int(headers.get("content-length") or 0) > limit
    except ValueError:
        return False


class Deadline:
    """A total time bound for one exchange (monotonic clock).

    An upload suspends it while its body streams out (each write stays bounded by the write
    timeout; a large file legitimately takes longer than any answer) and restarts it once the body
    is sent, so the answer gets the whole deadline.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.end = clock() + seconds
        self._moves: list[Callable[[float | None], None]] = []

    def on_move(self, callback: Callable[[float | None], None]) -> None:
        """Call ``callback(seconds left)`` on a restart, ``callback(None)`` on a suspension."""
        self._moves.append(callback)

    def suspend(self) -> None:
        self.end = math.inf
        for callback in self._moves:
            callback(None)

    def restart(self) -> None:
        self.end = self._clock() + self.seconds
        for callback in self._moves:
            callback(self.seconds)

    def remaining(self) -> float:
        return self.end - self._clock()

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0

    def clamp(self, timeout: float | None) -> float | None:
        """``timeout`` shortened to what is left (at least a sliver, so the read fails as a timeout)."""
        left = self.remaining()
        if math.isinf(left):
            return timeout
        left = max(left, 0.001)
        return left if timeout is None else min(timeout, left)


def check_json_input(value: Any, *, vendor: str | None = None, root: str = "body") -> None:
    """Refuse NaN / infinity (invalid JSON) and absurd nesting anywhere in a request body.

    Iterative, so an input nested deeper than the interpreter's recursion limit is told, not crashed on.
    """
    _check_leaf(value, root, vendor)
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= MAX_INPUT_DEPTH:
            raise InputValidationError(
                f"field {path} nests deeper than {MAX_INPUT_DEPTH} levels", vendor=vendor
            )
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            # A field's path is written out only for a container or a refused number (the common
            # leaf, a string, costs no formatting: this runs for every call a fan-out sends).
            if isinstance(child, float):
                _check_leaf(child, _child_path(path, key), vendor)
            elif isinstance(child, dict | list | tuple):
                stack.append((child, _child_path(path, key), depth + 1))


def _child_path(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def _check_leaf(item: Any, path: str, vendor: str | None) -> None:
    if isinstance(item, float) and not math.isfinite(item):
        raise InputValidationError(
            f"field {path} is {item!r}, which JSON cannot carry; send a finite number or null",
            vendor=vendor,
        )


# -- the shells ---------------------------------------------------------------------------------


def default_async_transport(settings: HttpSettings) -> httpx.AsyncBaseTransport | None:
    """aiohttp under the httpx API when ``httpx-aiohttp`` is installed, else None (httpx's own).

    Measured on the development machine against the emulator on loopback (3,000 GETs, 50 at a
    time): httpx's own async transport spent about 2.2 ms of CPU per request, this one about 0.3 ms
    (aiohttp alone 0.08 ms); a triggerer polling thousands of requests spends most of its CPU there.
    Errors keep their meaning: :func:`~airflow_provider_edgeinfer.clients.retry.failure_of` judges
    them by aiohttp's own classes.
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


#: The deadline of the exchange running in this context (sync shell, media downloads): every socket
#: read, write and connect is shortened to what is left of it, so even an answer's headers cannot
#: drip for ever.
EXCHANGE_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "edgeinfer_deadline", default=None
)


# -- one pause per connection ------------------------------------------------------------------

#: Backoff when a 429 carries no Retry-After: first pause, doubled per 429 in a row, up to the cap.
INITIAL_PAUSE = 1.0
MAX_PAUSE = 300.0


class RateLimiter:
    """A pause every caller waits out before sending; 429s extend it, a success resets the backoff."""

    def __init__(
        self,
        *,
        initial_pause: float = INITIAL_PAUSE,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._initial = initial_pause
        self._max = max_pause
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0
        #: When the backoff last grew: a 429 answering a request sent before then is the same news.
        self._struck_at = -math.inf
        self._strikes = 0
        #: 429s (and other answers with a Retry-After) seen; benchmarks and tests read it.
        self.throttled_count = 0

    @property
    def paused_for(self) -> float:
        """Seconds until sending may resume (0 when not paused)."""
        return max(0.0, self._resume_at - self._clock())

    def throttled(self, retry_after: float | None, *, sent_at: float | None = None) -> float:
        """Record a 429; returns the pause it imposes on every caller.

        The vendor's ``Retry-After`` wins (capped at ``max_pause``); without one the pause doubles
        with each 429 in a row. A pause is only ever extended, never shortened, by a later 429.
        ``sent_at`` (what :meth:`wait` returned before the refused send): a 429 to a request that
        was already in flight when the backoff last grew does not grow it again, so many senders
        refused together back off once, not once each.
        """
        self.throttled_count += 1
        now = self._clock()
        if sent_at is None or sent_at > self._struck_at:
            self._strikes += 1
            self._struck_at = now
        if retry_after is not None:
            pause = min(max(0.0, retry_after), self._max)
        else:
            pause = min(self._max, self._initial * 2.0 ** min(self._strikes - 1, 30))
        self._resume_at = max(self._resume_at, now + pause)
        return pause

    def succeeded(self) -> None:
        self._strikes = 0

    async def wait(self, deadline: float | None = None) -> float:
        """Return once no pause is in force, or once the wall-clock ``deadline`` has come.

        Returns the limiter's clock reading as it lets the caller through (``sent_at`` for
        :meth:`throttled`). A vendor may ask for any pause (``Retry-After: 999999999``): the
        caller's deadline wins.
        """
        # The pause may grow while we sleep (another 429), hence the loop.
        while (delay := self._resume_at - self._clock()) > 0:
            if deadline is not None:
                delay = min(delay, deadline - time.time())
                if delay <= 0:
                    break
            await self._sleep(delay)
        return self._clock()


_limiters: weakref.WeakKeyDictionary[Any, RateLimiter] = weakref.WeakKeyDictionary()


def limiter_for(client: Any) -> RateLimiter:
    """The limiter every user of ``client`` shares (created with the first call; gone with the client)."""
    limiter = _limiters.get(client)
    if limiter is None:
        limiter = _limiters[client] = RateLimiter()
    return limiter


def _clamp(timeout: float | None) -> float | None:
    deadline = EXCHANGE_DEADLINE.get()
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


def bound_sync_client(client: httpx.Client) -> httpx.Client:
    """Make every socket operation of ``client`` (its own transport and proxy mounts) obey EXCHANGE_DEADLINE.

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


class UploadStream(httpx.SyncByteStream, httpx.AsyncByteStream):
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
        request.stream = UploadStream(request.stream, deadline)


class _SyncBody:
    """A streamed body httpx may iterate again (it is not a generator, so httpx allows a replay)."""

    def __init__(self, factory: Callable[[], Iterator[bytes]]) -> None:
        self._factory = factory

    def __iter__(self) -> Iterator[bytes]:
        return self._factory()


class AsyncBody:
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
            body = AsyncBody if isinstance(self, AsyncClient) else _SyncBody
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
        said = announce_retries(f"{self.api.vendor} {call.operation}", settings)
        return retry_kwargs(call.safety, settings, before_sleep=said)


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
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """``verify``: a TLS context to share with other clients (default: one of its own)."""
        super().__init__(api, credentials, settings, auth=auth)
        kwargs = self._client_kwargs() | ({} if verify is None else {"verify": verify})
        self._http = bound_sync_client(httpx.Client(transport=transport, **kwargs))

    def _send_once(self, call: Call[T]) -> T:
        self._check(call)
        limit, seconds = self.settings.limits_of(call)
        deadline = Deadline(seconds)
        token = EXCHANGE_DEADLINE.set(deadline)
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
            EXCHANGE_DEADLINE.reset(token)
        return self._finish(
            call, HttpResult(response.status_code, response.headers, content, str(response.url))
        )

    def send(self, call: Call[T]) -> T:
        try:
            return self._send_once(call)
        except Exception as exc:
            failed = [exc]
        # Tenacity (and the retry policy it asks) starts at a failure: most calls succeed at once.
        for attempt in Retrying(**self._retry_kwargs(call)):
            with attempt:
                if failed:
                    raise failed.pop()  # the attempt already made, judged like any other
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
        """One attempt, no retry: for callers that pace and retry themselves (``retry.PacedSender``)."""
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
        try:
            return await self.send_once(call)
        except Exception as exc:
            failed = [exc]
        async for attempt in AsyncRetrying(**self._retry_kwargs(call)):
            with attempt:
                if failed:
                    raise failed.pop()
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
