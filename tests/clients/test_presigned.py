"""Presigned PUTs against the emulator over loopback: streamed, retried afresh, renewed, kept secret."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.aiosend import LeanSender, supports
from airflow_provider_edgeinfer.clients.core import Credentials, HttpResult
from airflow_provider_edgeinfer.clients.presigned import (
    EXPIRED_CODE,
    HashingReader,
    Progress,
    UploadSource,
    body_chunks,
    error_summary,
    is_expired,
    local_source,
    map_bounded,
    put_call,
    put_error_mapper,
    transfer,
    transfer_async,
    upload_many,
    url_secrets,
)
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.theta import PresignedUpload, ThetaAPI
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import EmulatorState
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InputValidationError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorTimeoutError,
    VendorValidationError,
)

SETTINGS = HttpSettings(read_timeout=10.0, retry=RetrySettings(initial_delay=0.001, max_delay=0.001))
FIELD = "audio_filename"


@pytest.fixture
def state(edgeinfer_emulator: EmulatorServer) -> Iterator[EmulatorState]:
    state = edgeinfer_emulator.state
    ttl = state.presign_ttl
    yield state
    state.presign_ttl = ttl


@pytest.fixture
def client(edgeinfer_emulator: EmulatorServer, state: EmulatorState) -> Iterator[SyncClient[ThetaAPI]]:
    api = ThetaAPI(edgeinfer_emulator.vendor_url("theta"))
    with SyncClient(api, Credentials.of(state.keys["theta"]), SETTINGS) as c:
        yield c


@pytest.fixture
async def aclient(
    edgeinfer_emulator: EmulatorServer, state: EmulatorState
) -> AsyncIterator[AsyncClient[ThetaAPI]]:
    api = ThetaAPI(edgeinfer_emulator.vendor_url("theta"))
    async with AsyncClient(api, Credentials.of(state.keys["theta"]), SETTINGS) as c:
        yield c


def _file(tmp_path: Path, size: int, name: str = "talk.wav", seed: int = 7) -> tuple[Path, str]:
    path = tmp_path / name
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(left, 1 << 20))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return path, digest.hexdigest()


def _presign(client: SyncClient[ThetaAPI], calls: list[PresignedUpload] | None = None) -> Any:
    def presign() -> PresignedUpload:
        target = client.send(client.api.presigned_urls("whisper", input_fields=[FIELD]))[FIELD]
        if calls is not None:
            calls.append(target)
        return target

    return presign


def _puts(state: EmulatorState) -> int:
    return state.requests["storage.put"]


# -- one PUT ------------------------------------------------------------------------------------


def test_put_streams_the_file_with_its_length_and_arrives_intact(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 3 * 1024 * 1024 + 17)
    source = local_source(str(path))
    target = _presign(client)()
    call = put_call(target.url, source, vendor="theta", field=FIELD, filename=target.filename)
    assert call.authenticated is False
    assert call.headers is not None and call.headers["Content-Length"] == str(source.size)
    assert call.stream is not None
    # Every attempt gets a fresh stream from the first byte.
    assert b"".join(call.stream()) == b"".join(call.stream()) == path.read_bytes()
    result = client.send(call)
    assert result.size == source.size and result.etag
    blob = state.blobs[target.filename]
    assert (blob.size, blob.sha256) == (source.size, digest)


async def test_async_put_arrives_intact(
    aclient: AsyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 2 * 1024 * 1024 + 5)
    target = (await aclient.send(aclient.api.presigned_urls("whisper")))[FIELD]
    await aclient.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    assert state.blobs[target.filename].sha256 == digest


@pytest.fixture
async def lean(edgeinfer_emulator: EmulatorServer, state: EmulatorState) -> AsyncIterator[LeanSender]:
    """The batch fan-out's sender (one attempt per send)."""
    api = ThetaAPI(edgeinfer_emulator.vendor_url("theta"))
    async with LeanSender(api, Credentials.of(state.keys["theta"]), 4, settings=SETTINGS) as sender:
        yield sender


async def test_the_fan_outs_sender_puts_the_file_with_its_length_and_without_the_key(
    lean: LeanSender, state: EmulatorState, tmp_path: Path
) -> None:
    """The emulator refuses, as S3 does, a presigned PUT that carries a key or has no length."""
    path, digest = _file(tmp_path, 2 * 1024 * 1024 + 5)
    target = await lean.send(lean.api.presign_input("whisper", None, FIELD))
    call = put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD)
    assert supports(lean.api, call)  # sent by the lean sender itself, not handed to httpx
    result = await lean.send(call)
    assert result.size == path.stat().st_size
    assert state.blobs[target.filename].sha256 == digest
    assert lean._fallback is None


@pytest.mark.parametrize("size", [100_000, 600_000], ids=["read-whole", "streamed"])
async def test_the_fan_outs_sender_sends_a_store_file_whole_or_streamed(
    lean: LeanSender, state: EmulatorState, tmp_path: Path, size: int
) -> None:
    """A file not on local disk (an object store's) is read off the loop, whole when it is small."""
    path, digest = _file(tmp_path, size)
    remote = UploadSource("s3://bucket/talk.wav", size, lambda: path.open("rb"), local=False)
    target = await lean.send(lean.api.presign_input("whisper", None, FIELD))
    filename = await transfer_async(lean.send, lambda: _answered(target), remote, vendor="theta", field=FIELD)
    assert filename == target.filename and state.blobs[filename].sha256 == digest


async def _answered(target: PresignedUpload) -> PresignedUpload:
    return target


async def test_transfer_async_renews_an_expired_url_once(
    lean: LeanSender, state: EmulatorState, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 200_000)
    state.scripted["uploads"].append({"kind": "expire"})
    asked: list[PresignedUpload] = []

    async def presign() -> PresignedUpload:
        target: PresignedUpload = await lean.send(lean.api.presign_input("whisper", None, FIELD))
        asked.append(target)
        return target

    filename = await transfer_async(lean.send, presign, local_source(str(path)), vendor="theta", field=FIELD)
    assert len(asked) == 2 and filename == asked[1].filename != asked[0].filename
    assert state.blobs[filename].sha256 == digest
    state.presign_ttl = -10
    with pytest.raises(AuthenticationError) as raised:
        await transfer_async(lean.send, presign, local_source(str(path)), vendor="theta", field=FIELD)
    assert is_expired(raised.value) and len(asked) == 4
    _assert_no_secret(str(raised.value), asked[-1].url)


def test_presigned_puts_with_a_key_or_without_a_length_are_refused(
    client: SyncClient[ThetaAPI], state: EmulatorState
) -> None:
    target = _presign(client)()
    with httpx.Client() as bare:
        keyed = bare.put(target.url, content=b"abc", headers={"Authorization": "Bearer k"})
        chunked = bare.put(target.url, content=iter([b"abc"]))
    assert keyed.status_code == 400 and "Only one auth mechanism" in keyed.text
    assert chunked.status_code == 411
    assert _puts(state) == 0


def test_put_memory_does_not_grow_with_the_file(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    size = 48 * 1024 * 1024
    path, digest = _file(tmp_path, size)
    target = _presign(client)()
    tracemalloc.start()
    try:
        client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.blobs[target.filename].sha256 == digest
    # Client and (in-process) emulator together: a few chunks, never the file.
    assert peak < 8 * 1024 * 1024, peak


def test_dropped_connection_mid_upload_is_retried_with_a_fresh_stream(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 4 * 1024 * 1024)
    opened = 0
    real = local_source(str(path))

    def counting_open() -> Any:
        nonlocal opened
        opened += 1
        return real.open()

    source = UploadSource(real.label, real.size, counting_open)
    state.scripted["uploads"].append({"kind": "drop", "after_bytes": 1024 * 1024})
    target = _presign(client)()
    client.send(put_call(target.url, source, vendor="theta", field=FIELD))
    assert state.faults_injected["uploads.drop"] == 1
    assert opened == 2, "the retry must read the file again from its first byte"
    assert state.blobs[target.filename].sha256 == digest
    assert _puts(state) == 1


def test_a_5xx_is_retried(client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path) -> None:
    path, digest = _file(tmp_path, 100_000)
    state.scripted["uploads"].extend([{"kind": "5xx", "status": 503, "retry_after": 0}, {"kind": "5xx"}])
    target = _presign(client)()
    client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    assert state.faults_injected["uploads.5xx"] == 2
    assert state.blobs[target.filename].sha256 == digest


def test_persistent_drops_end_in_a_clear_error_without_the_signature(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, _ = _file(tmp_path, 300_000)
    state.scripted["uploads"].extend([{"kind": "drop", "after_bytes": 1000}] * SETTINGS.retry.max_attempts)
    target = _presign(client)()
    with pytest.raises(VendorTimeoutError) as raised:
        client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    _assert_no_secret(str(raised.value), target.url)
    assert "/_uploads/" in str(raised.value)
    assert target.filename not in state.blobs


def test_expired_url_is_recognisable_and_names_the_field(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, _ = _file(tmp_path, 200_000)
    state.presign_ttl = -10
    target = _presign(client)()
    with pytest.raises(AuthenticationError) as raised:
        client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    assert is_expired(raised.value) and raised.value.code == EXPIRED_CODE
    assert FIELD in str(raised.value) and "theta" in str(raised.value)
    _assert_no_secret(str(raised.value), target.url)
    assert _puts(state) == 0


def test_transfer_renews_an_expired_url_once(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 200_000)
    state.scripted["uploads"].append({"kind": "expire"})
    asked: list[PresignedUpload] = []
    filename = transfer(
        client.send, _presign(client, asked), local_source(str(path)), vendor="theta", field=FIELD
    )
    assert len(asked) == 2 and filename == asked[1].filename != asked[0].filename
    assert state.blobs[filename].sha256 == digest
    assert asked[0].filename not in state.blobs


def test_transfer_gives_up_after_a_second_expiry(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, _ = _file(tmp_path, 1000)
    state.presign_ttl = -10
    asked: list[PresignedUpload] = []
    with pytest.raises(AuthenticationError) as raised:
        transfer(client.send, _presign(client, asked), local_source(str(path)), vendor="theta", field=FIELD)
    assert is_expired(raised.value)
    assert len(asked) == 2


def test_file_that_changes_during_upload_is_an_input_error(
    client: SyncClient[ThetaAPI], tmp_path: Path
) -> None:
    path, _ = _file(tmp_path, 10_000)
    source = UploadSource(str(path), 20_000, lambda: path.open("rb"))  # measured bigger than it is
    with pytest.raises(InputValidationError, match="shrank"):
        b"".join(body_chunks(source, vendor="theta")())
    grown = UploadSource(str(path), 5_000, lambda: path.open("rb"))
    with pytest.raises(InputValidationError, match="grew"):
        b"".join(body_chunks(grown, vendor="theta")())


def test_presigned_url_must_be_https_off_loopback(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 10)
    with pytest.raises(UnexpectedResponseError) as raised:
        put_call(
            "http://uploads.example.com/b/k?X-Amz-Signature=deadbeefcafe",
            local_source(str(path)),
            vendor="theta",
            field=FIELD,
        )
    assert "deadbeefcafe" not in str(raised.value) and "not https" in str(raised.value)
    assert put_call(
        "https://uploads.example.com/b/k?sig=x", local_source(str(path)), vendor="theta", field=FIELD
    )


# -- secrets ------------------------------------------------------------------------------------


def _assert_no_secret(text: str, url: str) -> None:
    for secret in url_secrets(url):
        assert secret not in text
    assert "signature=" not in text.lower()


def test_s3_error_bodies_are_quoted_without_what_they_echo() -> None:
    url = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE%2F2026&X-Amz-Signature=0123456789abcdef"
    body = (
        b'<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature '
        b"we calculated does not match</Message><StringToSign>AWS4-HMAC-SHA256 secret-ish</StringToSign>"
        b"<SignatureProvided>0123456789abcdef</SignatureProvided><CanonicalRequest>PUT /k "
        b"X-Amz-Credential=AKIAEXAMPLE</CanonicalRequest></Error>"
    )
    error = put_error_mapper(url, vendor="theta", field=FIELD, label="/data/a.wav", filename="upl_1")(
        HttpResult(403, httpx.Headers(), body, url)
    )
    text = str(error)
    assert isinstance(error, AuthenticationError) and not is_expired(error)
    assert "SignatureDoesNotMatch" in text and "does not match" in text and "/data/a.wav" in text
    for leak in ("0123456789abcdef", "AKIAEXAMPLE", "StringToSign", "secret-ish"):
        assert leak not in text


def test_expired_answers_of_real_stores_are_recognised() -> None:
    url = "https://store.example/k?sig=abcdef123456"
    mapper = put_error_mapper(url, vendor="theta", field=FIELD, label="a.wav", filename=None)
    s3 = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    gcs = b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
    for body in (s3, gcs):
        assert is_expired(mapper(HttpResult(403, httpx.Headers(), body, url)))
    assert not is_expired(mapper(HttpResult(403, httpx.Headers(), b"<Code>AccessDenied</Code>", url)))
    server = mapper(HttpResult(503, httpx.Headers({"retry-after": "2"}), b"slow down", url))
    assert isinstance(server, ServerError) and server.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, VendorValidationError),
        (401, AuthenticationError),
        (402, VendorAPIError),  # an object store bills no credit of ours
        (404, NotFoundError),
        (409, VendorAPIError),  # nor holds a conflict of ours
        (411, VendorValidationError),
        (413, VendorValidationError),
        (429, RateLimitError),
        (418, VendorAPIError),
        (500, ServerError),
    ],
)
def test_put_refusals_map_by_status(status: int, error: type[Exception]) -> None:
    url = "https://store.example/k?sig=abcdef123456"
    mapper = put_error_mapper(url, vendor="theta", field=FIELD, label="a.wav", filename=None)
    assert type(mapper(HttpResult(status, httpx.Headers(), b"refused", url))) is error


def test_error_summary_cuts_queries_out_of_quoted_urls() -> None:
    code, message = error_summary(b"could not PUT https://h/x?token=zzzzzz9 (gone)", ())
    assert code is None and "zzzzzz9" not in message and "https://h/x?***" in message


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_httpx_request_log_carries_no_signature(client: SyncClient[ThetaAPI], tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 1000)
    target = _presign(client)()
    # Straight on httpx's logger: whatever logging setup Airflow made, its INFO line must be clean.
    logger, collect = logging.getLogger("httpx"), _Collect()
    level = logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    puts = [line for line in collect.lines if "HTTP Request: PUT" in line]
    assert puts, "httpx logged no request line"
    _assert_no_secret("\n".join(collect.lines), target.url)
    assert "/_uploads/" + target.filename in puts[0]


def test_reprs_carry_no_url(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 10)
    target = PresignedUpload(field=FIELD, url="https://h/k?signature=s3cr3t-value", filename="upl_1")
    call = put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD, filename="upl_1")
    assert "s3cr3t-value" not in repr(target)
    assert "s3cr3t-value" not in repr(local_source(str(path)))
    assert call.url == target.url  # the Call needs it; the shells log only its redacted form


# -- progress and concurrency --------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_bytes_percent_and_rate_at_most_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    logger = logging.getLogger("test.progress")
    progress = Progress("/data/big.wav", 100_000_000, logger=logger, interval=5.0, min_bytes=1, clock=clock)
    progress.restart()
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(99):  # 1 MB every 0.5 s: 2 MB/s
            clock.now += 0.5
            progress.advance(1_000_000)
        progress.advance(1_000_000)
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # 49.5 s of sending, one line per 5 s, plus the summary
    assert lines[0] == "uploading /data/big.wav: 10000000 of 100000000 bytes (10%), 2.0 MB/s"
    assert lines[-1].startswith("uploaded /data/big.wav: 100000000 bytes in 49.5 s")


def test_small_files_log_no_progress(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    progress = Progress("a.wav", 1000, logger=logging.getLogger("test.progress"), clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        clock.now += 60
        progress.advance(500)
        progress.finish()
    assert caplog.records == []


def test_map_bounded_keeps_order_and_bounds_concurrency() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(item: int, abort: threading.Event) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002 * (item % 3))
        with lock:
            running -= 1
        return item * 10

    assert map_bounded(list(range(20)), work, max_concurrency=4) == [i * 10 for i in range(20)]
    assert 1 < peak <= 4
    with pytest.raises(ConfigurationError):
        map_bounded([1], work, max_concurrency=0)


def test_map_bounded_stops_the_others_on_the_first_failure() -> None:
    started: list[int] = []
    release = threading.Event()

    def work(item: int, abort: threading.Event) -> int:
        started.append(item)
        if item == 1:
            raise InputValidationError("item 1 is bad")
        release.wait(0.05)
        return item

    with pytest.raises(InputValidationError, match="item 1"):
        map_bounded(list(range(50)), work, max_concurrency=2)
    assert len(started) < 50, "queued work must be cancelled after a failure"


def test_upload_many_returns_filenames_in_input_order(
    client: SyncClient[ThetaAPI], state: EmulatorState, tmp_path: Path
) -> None:
    files = [_file(tmp_path, 50_000 + i * 1000, name=f"{i}.wav", seed=i) for i in range(12)]
    asked: list[PresignedUpload] = []
    names = upload_many(
        client.send,
        _presign(client, asked),
        [local_source(str(p)) for p, _ in files],
        vendor="theta",
        field=FIELD,
        max_concurrency=4,
    )
    assert len(names) == len(set(names)) == 12 and len(asked) == 12
    for name, (_, digest) in zip(names, files, strict=True):
        assert state.blobs[name].sha256 == digest


def test_hashing_reader_measures_without_reading_and_rewinds(tmp_path: Path) -> None:
    path, digest = _file(tmp_path, 300_000)
    reader = HashingReader(local_source(str(path)), vendor="omnitensor")
    assert reader.tell() == 0 and reader.seek(0, io.SEEK_END) == 300_000
    assert reader.seek(0) == 0
    reader.read(1000)
    reader.seek(0)  # a retry rewinds: the hash restarts
    data = b""
    while block := reader.read(65536):
        data += block
    assert reader.complete and reader.sha256 == digest == hashlib.sha256(data).hexdigest()
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(10)
    reader.close()


def test_emulator_drops_stored_uploads_on_request(
    client: SyncClient[ThetaAPI], state: EmulatorState, edgeinfer_emulator: EmulatorServer, tmp_path: Path
) -> None:
    path, _ = _file(tmp_path, 1000)
    target = _presign(client)()
    client.send(put_call(target.url, local_source(str(path)), vendor="theta", field=FIELD))
    stored = state.blobs[target.filename].path
    media = state.save_media(b"RIFF", ".wav")
    dropped = edgeinfer_emulator.control("uploads/drop", {})["dropped"]
    assert dropped >= 1 and target.filename not in state.blobs and not stored.exists()
    assert media in state.blobs, "generated media stays"
