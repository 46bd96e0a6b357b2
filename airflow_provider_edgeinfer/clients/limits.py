"""Bounds on every vendor answer, shared by both HTTP stacks: size, time, and how failures are told.

An answer is read as raw bytes and decoded here (gzip / deflate) with the decoded size counted as it
grows, so a body past its limit, or a small gzip bomb, is abandoned after about ``limit`` bytes
instead of inflating whole in memory. A :class:`Deadline` bounds one exchange from its start (or
from the end of an upload's body) to the last byte of the answer, which per-read timeouts cannot do
against an answer that drips one byte at a time. And a failed exchange is described only by safe,
fixed words (:func:`describe_failure`): never ``str`` or ``repr`` of an HTTP library's exception,
which may hold the request's headers (the credential) or bytes the server chose.
"""

from __future__ import annotations

import math
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_provider_edgeinfer.clients.redact import redact_text, redact_url
from airflow_provider_edgeinfer.exceptions import (
    DEADLINE_EXCEEDED,
    MALFORMED_BODY,
    NESTING_TOO_DEEP,
    RESPONSE_TOO_LARGE,
    EdgeInferError,
    InputValidationError,
    UnexpectedResponseError,
)

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


def too_large(what: str, url: str, limit: int, extra: str, *, status: int | None = None) -> EdgeInferError:
    return UnexpectedResponseError(
        f"{what} from {redact_url(url)} exceeds {extra} ({limit} bytes decoded); it was abandoned",
        http_status=status,
        code=RESPONSE_TOO_LARGE,
        hint=f"Raise the connection's {extra} extra if such an answer is expected.",
    )


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


def deadline_reason(seconds: float, extra: str) -> str:
    return f"the {extra} of {seconds:g} s passed before the answer ended"


# -- describing a failed exchange ---------------------------------------------------------------

_REASONS: list[tuple[str, str]] = [
    # (class name in the exception's MRO, fixed words); the first match wins, so specific first.
    ("ConnectTimeout", "connecting timed out"),
    ("ConnectionTimeoutError", "connecting timed out"),
    ("PoolTimeout", "no free connection in the pool in time"),
    ("ReadTimeout", "reading the answer timed out"),
    ("SocketTimeoutError", "reading the answer timed out"),
    ("ServerTimeoutError", "the server did not answer in time"),
    ("WriteTimeout", "sending the request timed out"),
    ("ProxyError", "the proxy refused or failed the request"),
    ("ClientProxyConnectionError", "the proxy could not be reached"),
    ("ClientHttpProxyError", "the proxy refused or failed the request"),
    ("ClientConnectorCertificateError", "the server's TLS certificate was refused"),
    ("ClientConnectorSSLError", "the TLS handshake failed"),
    ("ClientSSLError", "the TLS handshake failed"),
    ("ClientConnectorDNSError", "the host name did not resolve"),
    ("ClientConnectorError", "could not connect"),
    ("ConnectError", "could not connect"),
    ("ServerDisconnectedError", "the server closed the connection"),
    ("ClientPayloadError", "the answer's body was cut or malformed"),
    ("ClientResponseError", "the answer was not valid HTTP (bad status line or oversized header)"),
    ("RemoteProtocolError", "the answer was not valid HTTP"),
    ("LineTooLong", "the answer was not valid HTTP (a line too long)"),
    ("HttpProcessingError", "the answer was not valid HTTP"),
    ("LocalProtocolError", "the request could not be encoded as HTTP"),
    ("DecodingError", "the answer's content-encoding could not be decoded"),
    ("UnsupportedProtocol", "the URL's scheme is not supported"),
    ("InvalidURL", "the URL is not valid"),
    ("InvalidUrlClientError", "the URL is not valid"),
    ("NonHttpUrlClientError", "the URL's scheme is not supported"),
    ("TooManyRedirects", "too many redirects"),
    ("ReadError", "the connection broke while reading the answer"),
    ("WriteError", "the connection broke while sending the request"),
    ("ClientOSError", "a socket error"),
    ("ServerConnectionError", "the connection to the server failed"),
    ("ClientConnectionError", "the connection failed"),
    ("TimeoutException", "timed out"),
    ("TimeoutError", "timed out"),
    ("SSLError", "a TLS error"),
]


#: Packages whose exceptions are failures of an exchange (not bugs in the caller).
_NETWORK_PACKAGES = frozenset({"httpx", "httpcore", "h11", "anyio", "aiohttp", "yarl", "multidict", "ssl"})


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` came from the network or an HTTP stack, rather than from a bug of ours."""
    package = type(exc).__module__.partition(".")[0]
    return isinstance(exc, OSError | TimeoutError) or package in _NETWORK_PACKAGES


def _innermost(exc: BaseException) -> BaseException:
    """The aiohttp error under an httpx one (httpx-aiohttp maps them coarsely)."""
    cause = exc.__cause__
    if type(exc).__module__.startswith("httpx") and type(cause).__module__.startswith("aiohttp"):
        return cause  # type: ignore[return-value]
    return exc


def safe_reason(exc: BaseException) -> str:
    """Fixed words for what went wrong: nothing from the exception's own text."""
    exc = _innermost(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, words in _REASONS:
        if name in names:
            if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
                return f"{words} (errno {exc.errno})"
            return words
    if isinstance(exc, OSError) and exc.errno:
        return f"a socket error (errno {exc.errno})"
    return "the exchange failed"


def describe_failure(
    exc: BaseException, method: str, url: str, secrets: tuple[str, ...] = (), reason: str | None = None
) -> str:
    """``ReadTimeout on GET https://host/path: reading the answer timed out``, from safe parts only."""
    name = type(_innermost(exc)).__name__
    text = f"{name} on {method} {redact_url(url)}: {reason or safe_reason(exc)}"
    return redact_text(text, secrets)


# -- inputs and answers -------------------------------------------------------------------------


def check_json_input(value: Any, *, vendor: str | None = None, root: str = "body") -> None:
    """Refuse NaN / infinity (invalid JSON) and absurd nesting anywhere in a request body.

    Iterative, so an input nested deeper than the interpreter's recursion limit is told, not crashed on.
    """
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InputValidationError(
                    f"field {path} is {item!r}, which JSON cannot carry; send a finite number or null",
                    vendor=vendor,
                )
            continue
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_INPUT_DEPTH:
                raise InputValidationError(
                    f"field {path} nests deeper than {MAX_INPUT_DEPTH} levels", vendor=vendor
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                child_path = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
                stack.append((child, child_path, depth + 1))


def too_deep(
    url: str, status: int, request_id: str | None = None, vendor: str | None = None
) -> EdgeInferError:
    return UnexpectedResponseError(
        f"the answer from {redact_url(url)} (HTTP {status}) nests JSON deeper than can be decoded",
        vendor=vendor,
        http_status=status,
        request_id=request_id,
        code=NESTING_TOO_DEEP,
    )


__all__ = [
    "ACCEPT_ENCODING",
    "DEADLINE_EXCEEDED",
    "DEFAULT_CALL_DEADLINE",
    "DEFAULT_DOWNLOAD_DEADLINE",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "BoundedBody",
    "Deadline",
    "check_json_input",
    "declared_too_large",
    "describe_failure",
    "is_transport_failure",
    "safe_reason",
    "too_deep",
    "too_large",
]
