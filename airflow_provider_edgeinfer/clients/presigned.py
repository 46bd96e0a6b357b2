"""Streaming uploads to presigned URLs, in constant memory (no Airflow import).

A presigned ``PUT`` is a :class:`~airflow_provider_edgeinfer.clients.core.Call` like any other: its
body is a re-creatable factory of byte chunks read from the source, so a retry (a dropped
connection, a 5xx) starts the file again from its first byte, and its ``Content-Length`` is known
up front. The URL is a bearer credential: it never reaches a log line, an exception or a repr
without its query string being cut (see :mod:`~airflow_provider_edgeinfer.clients.redact`).

:func:`upload_many` moves many files with bounded concurrency (threads, each sending through its own
:class:`~airflow_provider_edgeinfer.clients.transport.SyncClient` as the hook hands them out:
reading a file and writing a socket both release the GIL, and a worker's blocking client needs no
event loop).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_edgeinfer.clients.core import (
    STATUS_ERRORS,
    Call,
    HttpResult,
    error_for_status,
    is_loopback,
)
from airflow_provider_edgeinfer.clients.redact import REDACTED, redact_text, redact_url
from airflow_provider_edgeinfer.clients.retry import Safety, parse_retry_after
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    EdgeInferError,
    InputValidationError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorValidationError,
)
from airflow_provider_edgeinfer.secrets import mask_url

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("airflow_provider_edgeinfer.uploads")

#: Bytes read from the source and handed to the socket at a time: large enough that per-chunk
#: overhead vanishes next to the copy, small enough that eight concurrent uploads stay in a few MB.
CHUNK_BYTES = 1024 * 1024
#: Theta's documents, "Presigned uploads": the raw bytes go as ``application/octet-stream``.
CONTENT_TYPE = "application/octet-stream"
#: Read/write timeout of one PUT: the store may hash or replicate a large object before it answers.
PUT_TIMEOUT = 300.0
#: ``EdgeInferError.code`` of an :class:`AuthenticationError` whose presigned URL expired: the caller
#: asks the vendor for a fresh URL once instead of failing.
EXPIRED_CODE = "PRESIGNED_URL_EXPIRED"
#: Progress lines for files at least this big, at most this often.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
PROGRESS_INTERVAL_SECONDS = 5.0
DEFAULT_MAX_CONCURRENCY = 8
#: A file up to this size goes in one write (read whole) rather than streamed: the glob batches
#: many small files. With 64 senders, at most 16 MB in memory.
WHOLE_BODY_BYTES = 256 * 1024
#: Quoted from a store's error body at most; S3's XML errors also echo the string it signed.
_MAX_QUOTED = 200
_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{1,300})</Message>")
_URL_QUERY = re.compile(r"(https?://[^\s?\"'<>]+)\?[^\s\"'<>]*")


@dataclass(frozen=True)
class UploadSource:
    """One file to upload: a label safe to log, its exact size, and how to open it (binary, fresh)."""

    label: str
    size: int
    open: Callable[[], IO[bytes]] = field(repr=False, compare=False)
    #: Base name the vendor may keep (multipart filename); defaults to the label's last segment.
    name: str = ""
    #: On this machine's disk: a small one is read on an event loop as cheaply as in a thread.
    local: bool = False

    @property
    def basename(self) -> str:
        return self.name or self.label.rstrip("/").rsplit("/", 1)[-1] or "upload"


def local_source(path: str, size: int | None = None) -> UploadSource:
    """A local file as an :class:`UploadSource`; ``size`` as a listing gave it, else read now."""
    import os

    if size is None:
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise InputValidationError(f"source {path!r} cannot be read: {exc.strerror}") from None
    # Plain unbuffered reads: the upload reads in large chunks of its own.
    return UploadSource(path, size, lambda: open(path, "rb", buffering=0), local=True)


class LogLike(Protocol):
    """A stdlib logger, or Airflow's task logger (``self.log``), whose lines reach the task log."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class PresignedTarget(Protocol):
    """Where one file goes: Theta's ``PresignedUpload`` and anything shaped like it."""

    @property
    def url(self) -> str: ...

    @property
    def filename(self) -> str: ...


@dataclass(frozen=True)
class PutResult:
    size: int
    etag: str | None = None


class UploadAborted(Exception):
    """Internal: another upload of the same batch failed, so this one stops sending."""


class Progress:
    """Logs bytes, percent and MB/s of one big upload at most every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        logger: LogLike | None = None,
        interval: float | None = None,
        min_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.log = logger or log
        self.interval = PROGRESS_INTERVAL_SECONDS if interval is None else interval
        self.enabled = total >= (PROGRESS_MIN_BYTES if min_bytes is None else min_bytes)
        self.clock = clock
        self.sent = 0
        self.attempts = 0
        self.started = self.last = clock()

    def restart(self) -> None:
        """A new attempt sends the file from its first byte again."""
        self.attempts += 1
        self.sent = 0
        self.started = self.last = self.clock()

    def advance(self, count: int) -> None:
        self.sent += count
        if not self.enabled:
            return
        now = self.clock()
        if now - self.last >= self.interval and self.sent < self.total:
            self.last = now
            self.log.info(
                "uploading %s: %d of %d bytes (%.0f%%), %.1f MB/s",
                self.label,
                self.sent,
                self.total,
                100.0 * self.sent / self.total,
                self.rate(now),
            )

    def rate(self, now: float | None = None) -> float:
        elapsed = (self.clock() if now is None else now) - self.started
        return self.sent / 1e6 / elapsed if elapsed > 0 else 0.0

    def finish(self) -> None:
        if self.enabled:
            self.log.info(
                "uploaded %s: %d bytes in %.1f s (%.1f MB/s)",
                self.label,
                self.sent,
                self.clock() - self.started,
                self.rate(),
            )


def body_chunks(
    source: UploadSource,
    *,
    vendor: str,
    progress: Progress | None = None,
    abort: threading.Event | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Callable[[], Iterator[bytes]]:
    """A factory of the file's chunks: each call opens the source afresh (one per attempt).

    Exactly ``source.size`` bytes are produced, the Content-Length promised: a file that changed
    since it was measured is an error rather than a body of the wrong length.
    """

    def chunks() -> Iterator[bytes]:
        if progress is not None:
            progress.restart()
        remaining = source.size
        with source.open() as handle:
            while remaining > 0:
                if abort is not None and abort.is_set():
                    raise UploadAborted(source.label)
                block = handle.read(min(chunk_bytes, remaining))
                if not block:
                    raise InputValidationError(
                        f"source {source.label} shrank while it was uploaded "
                        f"({source.size - remaining} of {source.size} bytes read)",
                        vendor=vendor,
                    )
                remaining -= len(block)
                if progress is not None:
                    progress.advance(len(block))
                yield block
            if handle.read(1):
                raise InputValidationError(
                    f"source {source.label} grew while it was uploaded (expected {source.size} bytes)",
                    vendor=vendor,
                )

    return chunks


# -- errors -----------------------------------------------------------------------------------


def url_secrets(url: str) -> tuple[str, ...]:
    """The query values of a presigned URL (signature, credential, token): never to be quoted."""
    try:
        return tuple(v for _, v in parse_qsl(urlsplit(url).query) if len(v) >= 4)
    except ValueError:
        return ()


def error_summary(content: bytes, secrets: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """(code, message) from an object store's error body, without what it echoes of the request.

    S3's XML errors carry ``<StringToSign>``/``<CanonicalRequest>``/``<SignatureProvided>``: only
    ``<Code>`` and ``<Message>`` are read; other bodies are quoted briefly, URLs without queries.
    """
    text = content[:8192].decode("utf-8", "replace")
    code_match, message_match = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    code: str | None = code_match.group(1).strip() if code_match else None
    if code_match or message_match:
        message = message_match.group(1).strip() if message_match else (code or "")
    else:
        message = ""
        try:
            body = json.loads(text) if text.lstrip().startswith("{") else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("message", "error", "detail"):
                if isinstance(body.get(key), str):
                    message = body[key]
                    break
        message = message or (text.strip().splitlines() or [""])[0]
    message = _URL_QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", message)
    message = redact_text(message, secrets)[:_MAX_QUOTED] or "no error message in the answer"
    return (redact_text(code, secrets) if code else None), message


#: An object store's answer to a PUT means what an API's does, but for 402 and 409 (no quota or
#: conflict of ours lives there) and 411 (a length refused: a bad request).
PUT_STATUS_ERRORS: Mapping[int, type[VendorAPIError]] = {
    **{status: cls for status, cls in STATUS_ERRORS.items() if status not in (402, 409)},
    411: VendorValidationError,
}


def is_expired(error: BaseException) -> bool:
    """Whether ``error`` says the presigned URL expired (ask the vendor for a fresh one)."""
    return isinstance(error, AuthenticationError) and error.code == EXPIRED_CODE


def put_error_mapper(
    url: str, *, vendor: str, field: str, label: str, filename: str | None
) -> Callable[[HttpResult], EdgeInferError]:
    secrets = url_secrets(url)

    def on_error(result: HttpResult) -> EdgeInferError:
        code, message = error_summary(result.content, secrets)
        what = f"PUT of {label} for field {field!r} to {redact_url(url)} refused: {message}"
        expired = result.status in (400, 403) and "expire" in f"{code} {message}".lower()
        if expired:
            return AuthenticationError(
                what,
                vendor=vendor,
                http_status=result.status,
                request_id=filename,
                operation=f"upload {field}",
                code=EXPIRED_CODE,
                hint="The presigned URL expired before the upload; ask the vendor for a fresh one.",
            )
        return error_for_status(result.status, PUT_STATUS_ERRORS)(
            what,
            vendor=vendor,
            http_status=result.status,
            request_id=filename,
            operation=f"upload {field}",
            retry_after=parse_retry_after(result.headers.get("retry-after")),
            code=code,
        )

    return on_error


# -- the PUT ----------------------------------------------------------------------------------


def check_upload_url(url: str, vendor: str) -> str:
    """A presigned URL the file may go to: https, or plain http only on loopback (the emulator).

    Its signature is handed to Airflow's masker here, the one door every presigned URL goes through.
    """
    mask_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback(host):
        return url
    raise UnexpectedResponseError(
        f"the vendor's presigned URL {redact_url(url)} is not https; refusing to send the file in the clear",
        vendor=vendor,
    )


def put_call(
    url: str,
    source: UploadSource,
    *,
    vendor: str,
    field: str,
    filename: str | None = None,
    progress: Progress | None = None,
    abort: threading.Event | None = None,
    content_type: str = CONTENT_TYPE,
) -> Call[PutResult]:
    """The ``PUT`` of ``source`` to a presigned URL, streamed with its Content-Length.

    Idempotent (the same bytes to the same key), so the shells retry it after a dropped connection
    or a 5xx with a fresh stream. Never authenticated: the URL is the credential.
    """
    check_upload_url(url, vendor)

    def parse(result: HttpResult) -> PutResult:
        return PutResult(source.size, result.headers.get("etag"))

    return Call(
        f"upload {field}",
        "PUT",
        url,
        parse,
        safety=Safety.IDEMPOTENT,
        headers={"Content-Type": content_type, "Content-Length": str(source.size)},
        stream=body_chunks(source, vendor=vendor, progress=progress, abort=abort),
        read_timeout=PUT_TIMEOUT,
        request_id=filename,
        authenticated=False,
        on_error=put_error_mapper(url, vendor=vendor, field=field, label=source.label, filename=filename),
    )


def read_whole(stream: Callable[[], Iterator[bytes]]) -> bytes:
    """A small streamed body in one piece (its size checks still run: see :func:`body_chunks`)."""
    return b"".join(stream())


#: What :func:`_transfer_steps` yields to ask its driver for a fresh presigned target.
PRESIGN = object()


def _transfer_steps(
    source: UploadSource,
    *,
    vendor: str,
    field: str,
    logger: LogLike,
    abort: threading.Event | None,
) -> Generator[Any, Any, str]:
    """One file's upload as steps, for any driver: yields :data:`PRESIGN` (answered with a
    ``PresignedTarget``) or a ``PUT`` call (answered with its result, or its error thrown in).

    An expired URL is renewed once (a slow queue may outlive a URL); a second expiry is an error.
    """
    target = yield PRESIGN
    for attempt in (1, 2):
        progress = Progress(source.label, source.size, logger=logger)
        try:
            yield put_call(
                target.url,
                source,
                vendor=vendor,
                field=field,
                filename=target.filename,
                progress=progress,
                abort=abort,
            )
        except AuthenticationError as exc:
            if not is_expired(exc) or attempt == 2:
                raise
            logger.warning(
                "the presigned URL for %s (field %r) expired; asking %s for a fresh one",
                source.label,
                field,
                vendor,
            )
            target = yield PRESIGN
            continue
        progress.finish()
        return str(target.filename)
    raise AssertionError("unreachable: the second attempt returns or raises")


def transfer(
    send: Callable[[Call[Any]], Any],
    presign: Callable[[], PresignedTarget],
    source: UploadSource,
    *,
    vendor: str,
    field: str,
    logger: LogLike | None = None,
    abort: threading.Event | None = None,
) -> str:
    """Upload one file to a fresh presigned URL (blocking); returns the filename the input names."""
    steps = _transfer_steps(source, vendor=vendor, field=field, logger=logger or log, abort=abort)
    step = next(steps)
    while True:
        try:
            answer = presign() if step is PRESIGN else send(step)
        except Exception as exc:
            step = _resume(steps, exc)
        else:
            step = _resume(steps, None, answer)
        if isinstance(step, _Done):
            return step.filename


async def transfer_async(
    send: Callable[[Call[Any]], Awaitable[Any]],
    presign: Callable[[], Awaitable[PresignedTarget]],
    source: UploadSource,
    *,
    vendor: str,
    field: str,
    logger: LogLike | None = None,
) -> str:
    """:func:`transfer` on an event loop: ``send`` and ``presign`` are awaited.

    A small local file is read on the loop, whole (a thread hop per file cost a fifth of a glob
    batch's rate, benchmarks/batch_scale.py); any other body is read by ``send`` off the loop.
    """
    steps = _transfer_steps(source, vendor=vendor, field=field, logger=logger or log, abort=None)
    read_here = source.local and source.size <= WHOLE_BODY_BYTES
    step = next(steps)
    while True:
        try:
            if read_here and step is not PRESIGN:
                step = replace(step, stream=None, content=read_whole(step.stream))
            answer = await (presign() if step is PRESIGN else send(step))
        except Exception as exc:
            step = _resume(steps, exc)
        else:
            step = _resume(steps, None, answer)
        if isinstance(step, _Done):
            return step.filename


@dataclass(frozen=True)
class _Done:
    filename: str


def _resume(steps: Generator[Any, Any, str], error: Exception | None, answer: Any = None) -> Any:
    """The next step after an answer (or an error, raised again if the steps do not handle it)."""
    try:
        return steps.throw(error) if error is not None else steps.send(answer)
    except StopIteration as done:
        return _Done(done.value)


def map_bounded(
    items: Sequence[T],
    work: Callable[[T, threading.Event], R],
    *,
    max_concurrency: int,
) -> list[R]:
    """``[work(item, abort) for item in items]`` on at most ``max_concurrency`` threads, in input order.

    The first failure sets ``abort`` (uploads in flight stop at their next chunk), cancels what has
    not started, and is raised once every thread has stopped.
    """
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    abort = threading.Event()
    if max_concurrency == 1 or len(items) <= 1:
        return [work(item, abort) for item in items]
    with ThreadPoolExecutor(min(max_concurrency, len(items)), thread_name_prefix="edgeinfer-upload") as pool:
        futures: list[Future[R]] = [pool.submit(work, item, abort) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            abort.set()
            for future in pending:
                future.cancel()
    errors = [
        f.exception()
        for f in futures
        if not f.cancelled() and f.exception() is not None and not isinstance(f.exception(), UploadAborted)
    ]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def upload_many(
    send: Callable[[Call[Any]], Any],
    presign: Callable[[], PresignedTarget],
    sources: Sequence[UploadSource],
    *,
    vendor: str,
    field: str,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    logger: LogLike | None = None,
) -> list[str]:
    """Upload every source to its own presigned URL; the filenames, in input order.

    ``presign`` is asked right before each file goes (not all up front), so a URL never waits in a
    queue behind other uploads long enough to expire.
    """
    logger = logger or log
    started = time.monotonic()

    def one(source: UploadSource, abort: threading.Event) -> str:
        return transfer(send, presign, source, vendor=vendor, field=field, logger=logger, abort=abort)

    filenames = map_bounded(sources, one, max_concurrency=max_concurrency)
    elapsed = time.monotonic() - started
    total = sum(s.size for s in sources)
    logger.info(
        "uploaded %d file(s), %d bytes, to %s field %r in %.1f s (%.1f MB/s)",
        len(sources),
        total,
        vendor,
        field,
        elapsed,
        total / 1e6 / elapsed if elapsed > 0 else 0.0,
    )
    return filenames


class HashingReader(io.RawIOBase):
    """A source as a seekable binary file that hashes what is read (multipart uploads).

    httpx measures a file part by seeking to its end and rewinds it before each attempt: seeking
    to the end answers the size without reading, and rewinding reopens the source and restarts
    the hash, so :attr:`sha256` always describes the last attempt's bytes.
    """

    def __init__(self, source: UploadSource, *, vendor: str) -> None:
        super().__init__()
        self.source = source
        self.vendor = vendor
        self.name = source.basename
        self._handle: IO[bytes] | None = None
        self._pos = 0
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and offset == 0:
            self._close_handle()
            self._pos = self.source.size
            return self._pos
        if whence == io.SEEK_SET and offset == 0:
            self._close_handle()
            self._pos = 0
            self._digest = hashlib.sha256()
            return 0
        if whence == io.SEEK_SET and offset == self._pos:
            return self._pos
        raise io.UnsupportedOperation("only rewinding and measuring are supported")

    def read(self, size: int = -1) -> bytes:
        remaining = self.source.size - self._pos
        if remaining <= 0:
            return b""
        if self._handle is None:
            self._handle = self.source.open()
        want = remaining if size is None or size < 0 else min(size, remaining)
        block = self._handle.read(want)
        if not block:
            raise InputValidationError(
                f"source {self.source.label} shrank while it was uploaded", vendor=self.vendor
            )
        self._pos += len(block)
        self._digest.update(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def complete(self) -> bool:
        return self._pos == self.source.size

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        self._close_handle()
        super().close()


__all__ = [
    "CHUNK_BYTES",
    "EXPIRED_CODE",
    "HashingReader",
    "LogLike",
    "Progress",
    "PutResult",
    "UploadSource",
    "body_chunks",
    "error_summary",
    "is_expired",
    "local_source",
    "map_bounded",
    "put_call",
    "transfer",
    "upload_many",
]
