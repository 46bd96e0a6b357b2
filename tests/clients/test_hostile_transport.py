"""Hostile servers on 127.0.0.1 against every HTTP stack: secrets, size, time, nesting, NaN, host guard.

The stacks: the httpx ``SyncClient`` (workers), the httpx ``AsyncClient`` over aiohttp (triggers),
the same over httpx's own async transport, and the lean aiohttp ``LeanSender`` (batch fan-out).
"""

from __future__ import annotations

import gc
import io
import json
import logging
import socket
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest

from airflow_provider_edgeinfer.clients.aiosend import LeanSender
from airflow_provider_edgeinfer.clients.core import (
    BearerAuth,
    Call,
    Credentials,
    HttpResult,
    TokenExchangeAuth,
    VendorAPI,
)
from airflow_provider_edgeinfer.clients.media_urls import download_media
from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings, Safety
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.exceptions import (
    DEADLINE_EXCEEDED,
    MALFORMED_BODY,
    NESTING_TOO_DEEP,
    RESPONSE_TOO_LARGE,
    ConfigurationError,
    EdgeInferError,
    InputValidationError,
    OutcomeUnknownError,
    TransportError,
    UnexpectedResponseError,
    VendorTimeoutError,
)
from tests.clients.hostile_server import Hostile, Reply, serving

KEY = "sk-hostile-SUPERSECRET-0123456789"
MiB = 1024 * 1024


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], Hostile]]:
    yield from serving()


class FakeAPI(VendorAPI):
    vendor: ClassVar[str] = "fake"

    def __init__(self, base: str) -> None:
        self.base = base

    def base_urls(self) -> tuple[str, ...]:
        return (self.base,)

    def get(self, path: str = "/thing", **kwargs: Any) -> Call[Any]:
        return Call("get_thing", "GET", self.base + path, self.json_body, **kwargs)

    def post(self, body: Any, safety: Safety = Safety.CREATES_WORK) -> Call[Any]:
        return Call("make_thing", "POST", self.base + "/thing", self.json_body, safety=safety, json=body)


def settings(**kwargs: Any) -> HttpSettings:
    return HttpSettings(retry=RetrySettings(max_attempts=1, initial_delay=0.0), **kwargs)


STACKS = ["sync", "async-aiohttp", "async-httpx", "lean"]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send(stack: str, api: FakeAPI, call: Call[Any], http: HttpSettings | None = None) -> Any:
    """``call`` through one HTTP stack, as the provider sends it there."""
    http = http or settings()
    credentials = Credentials.of(KEY)
    if stack == "sync":
        with SyncClient(api, credentials, http) as client:
            return client.send(call)
    if stack == "lean":
        async with LeanSender(api, credentials, 4, settings=http) as sender:
            return await sender.send(call)
    transport = httpx.AsyncHTTPTransport() if stack == "async-httpx" else None
    async with AsyncClient(api, credentials, http, transport=transport) as aclient:
        return await aclient.send(call)


def assert_secret_free(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    for text in (str(error), repr(error), caplog.text, *(repr(r.args) for r in caplog.records)):
        assert KEY not in text
        assert "Bearer" not in text


# -- 1. secrets: answers the stack cannot parse ---------------------------------------------------


def big_header(server: Hostile) -> Reply:
    return lambda conn, head: server.send(
        conn, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10240 + b"\r\nContent-Length: 2\r\n\r\n{}"
    )


def garbage_status(server: Hostile) -> Reply:
    return lambda conn, head: server.send(conn, b"SPAM \x00\x01 this is not http\r\n\r\n")


def echoing_header(server: Hostile) -> Reply:
    """A malformed header line that quotes the request's Authorization value back."""

    def reply(conn: socket.socket, head: bytes) -> None:
        auth = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization"))
        server.send(
            conn, b"HTTP/1.1 200 OK\r\n" + auth.replace(b":", b"") + b"\r\nContent-Length: 2\r\n\r\n{}"
        )

    return reply


@pytest.mark.parametrize("hostile", [big_header, garbage_status, echoing_header])
async def test_an_unparsable_answer_never_shows_the_key(
    stack: str, hostile: Callable[[Hostile], Reply], serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger at INFO (what workers and triggerers log); httpcore's DEBUG trace quotes whatever
    # bytes a malformed answer held, which is the server's choice, not ours.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_edgeinfer")
    server = serve(lambda conn, head: None)
    server.reply = hostile(server)
    api = FakeAPI(server.url)
    try:
        await send(stack, api, api.get())
    except EdgeInferError as exc:
        error: EdgeInferError | None = exc
    else:
        error = None
    assert KEY.encode() in server.requests[0]  # the key was sent: its absence below means something
    # httpx's own parser takes a 10 KB header; aiohttp's refuses it, as every stack refuses the rest.
    if hostile is big_header and stack in ("sync", "async-httpx"):
        assert error is None
        return
    assert isinstance(error, TransportError | OutcomeUnknownError)
    assert f"GET {server.url}/thing" in str(error)
    assert_secret_free(error, caplog)


async def test_a_call_that_creates_work_gets_outcome_unknown_not_a_foreign_error(
    stack: str, serve: Any
) -> None:
    server = serve(lambda conn, head: None)
    server.reply = garbage_status(server)
    api = FakeAPI(server.url)
    with pytest.raises(OutcomeUnknownError) as raised:
        await send(stack, api, api.post({"n": 1}))
    assert KEY not in repr(raised.value)


# -- 2. size ----------------------------------------------------------------------------------------


def undeclared_body(
    server: Hostile, total: int, *, encoding: bytes | None = None, data: bytes = b""
) -> Reply:
    """A body sent until the connection closes (no Content-Length), 64 KiB at a time."""

    def reply(conn: socket.socket, head: bytes) -> None:
        extra = b"Content-Encoding: " + encoding + b"\r\n" if encoding else b""
        server.send(conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + extra + b"\r\n")
        if data:
            server.send(conn, data)
            return
        piece = b"0" * 65536
        for _ in range(total // len(piece)):
            server.send(conn, piece)

    return reply


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped (about 250 KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


async def test_an_answer_past_max_response_bytes_is_abandoned_while_streaming(stack: str, serve: Any) -> None:
    server = serve(lambda conn, head: None)
    total = 256 * MiB
    server.reply = undeclared_body(server, total)
    api = FakeAPI(server.url)
    with pytest.raises(UnexpectedResponseError) as raised:
        await send(stack, api, api.get(), settings(max_response_bytes=MiB))
    assert raised.value.code == RESPONSE_TOO_LARGE
    assert "max_response_bytes" in str(raised.value)
    assert server.sent < total / 4  # abandoned early, not read to the end


async def test_a_declared_oversized_answer_is_refused_before_its_body(stack: str, serve: Any) -> None:
    server = serve(lambda conn, head: None)
    server.reply = lambda conn, head: server.send(
        conn, b"HTTP/1.1 200 OK\r\nContent-Length: 524288000\r\n\r\n" + b"0" * 65536
    )
    api = FakeAPI(server.url)
    with pytest.raises(UnexpectedResponseError) as raised:
        await send(stack, api, api.get(), settings(max_response_bytes=MiB))
    assert raised.value.code == RESPONSE_TOO_LARGE


async def test_a_gzip_bomb_stops_after_about_the_limit(stack: str, serve: Any, gzip_bomb: bytes) -> None:
    server = serve(lambda conn, head: None)
    server.reply = undeclared_body(server, 0, encoding=b"gzip", data=gzip_bomb)
    api = FakeAPI(server.url)
    tracemalloc.start()
    try:
        with pytest.raises(UnexpectedResponseError) as raised:
            await send(stack, api, api.get(), settings(max_response_bytes=MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.code == RESPONSE_TOO_LARGE
    assert peak < 24 * MiB  # 256 MiB inflated whole before


async def test_a_small_gzip_answer_still_decodes(stack: str, serve: Any) -> None:
    server = serve(lambda conn, head: None)
    body = gzip_of(json.dumps({"name": "x" * 5000}).encode())
    server.reply = lambda conn, head: server.send(
        conn,
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
    )
    api = FakeAPI(server.url)
    assert await send(stack, api, api.get(), settings(max_response_bytes=6000)) == {"name": "x" * 5000}


def gzip_of(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


def test_media_download_is_bounded_by_max_download_bytes(serve: Any, gzip_bomb: bytes) -> None:
    plain = serve(lambda conn, head: None)
    plain.reply = undeclared_body(plain, 64 * MiB)
    bomb = serve(lambda conn, head: None)
    bomb.reply = undeclared_body(bomb, 0, encoding=b"gzip", data=gzip_bomb)
    small = settings(max_download_bytes=MiB)
    for server in (plain, bomb):
        out = io.BytesIO()
        with pytest.raises(UnexpectedResponseError) as raised:
            download_media(server.url + "/image.png?X-Amz-Signature=abc", out, small, vendor="fake")
        assert raised.value.code == RESPONSE_TOO_LARGE
        assert "max_download_bytes" in str(raised.value) and "abc" not in str(raised.value)
        assert len(out.getvalue()) <= MiB
    ok = serve(lambda conn, head: None)
    ok.reply = lambda conn, head: ok.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    out = io.BytesIO()
    assert download_media(ok.url + "/a.png", out, small) == 5
    assert out.getvalue() == b"hello"


# -- 3. time: a total deadline however slowly bytes drip ---------------------------------------------


def drip(server: Hostile, prefix: bytes, every: float = 0.1) -> Reply:
    def reply(conn: socket.socket, head: bytes) -> None:
        server.send(conn, prefix)
        for _ in range(200):  # 20 s at most, far past every deadline below
            time.sleep(every)
            server.send(conn, b"a")

    return reply


@pytest.mark.parametrize(
    "prefix",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Slow: "],
    ids=["body", "headers"],
)
async def test_a_dripping_answer_ends_at_the_call_deadline(stack: str, serve: Any, prefix: bytes) -> None:
    server = serve(lambda conn, head: None)
    server.reply = drip(server, prefix)
    api = FakeAPI(server.url)
    started = time.monotonic()
    with pytest.raises(VendorTimeoutError) as raised:
        await send(stack, api, api.get(), settings(call_deadline=1.0, read_timeout=5.0))
    assert time.monotonic() - started < 3.0
    assert raised.value.code == DEADLINE_EXCEEDED
    assert "call_deadline" in str(raised.value)


def test_a_dripping_media_download_ends_at_its_deadline(serve: Any) -> None:
    server = serve(lambda conn, head: None)
    server.reply = drip(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    with pytest.raises(VendorTimeoutError) as raised:
        download_media(server.url + "/a.png", io.BytesIO(), settings(download_deadline=1.0, read_timeout=5.0))
    assert time.monotonic() - started < 3.0
    assert raised.value.code == DEADLINE_EXCEEDED and "download_deadline" in str(raised.value)


def test_a_long_read_timeout_of_a_call_extends_its_deadline() -> None:
    http = settings(call_deadline=10.0, connect_timeout=2.0)
    assert http.limits_of(FakeAPI("http://127.0.0.1:9").get(read_timeout=300.0)) == (
        http.max_response_bytes,
        302.0,
    )
    assert http.limits_of(FakeAPI("http://127.0.0.1:9").get(deadline=3.0, max_response_bytes=7)) == (7, 3.0)


# -- 4. deeply nested JSON ---------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("content", [DEEP, b"[NaN," + DEEP + b"]"], ids=["msgspec", "json-fallback"])
def test_deeply_nested_json_is_an_unexpected_response(content: bytes) -> None:
    api = FakeAPI("http://127.0.0.1:9")
    result = HttpResult(200, httpx.Headers(), content, "http://127.0.0.1:9/x?token=abc")
    with pytest.raises(UnexpectedResponseError) as raised:
        api.json_body(result)
    assert raised.value.code == NESTING_TOO_DEEP
    assert "abc" not in str(raised.value)


@pytest.mark.parametrize("status", [200, 500])
async def test_deeply_nested_answers_through_every_stack(stack: str, serve: Any, status: int) -> None:
    server = serve(lambda conn, head: None)
    server.reply = lambda conn, head: server.send(
        conn, b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(DEEP)) + DEEP
    )
    api = FakeAPI(server.url)
    with pytest.raises(UnexpectedResponseError) as raised:
        await send(stack, api, api.get())
    assert raised.value.code == NESTING_TOO_DEEP


# -- 5. NaN / infinity in an input -------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
async def test_a_non_finite_number_is_refused_before_anything_is_sent(
    stack: str, serve: Any, value: float
) -> None:
    server = serve(lambda conn, head: None)
    server.reply = lambda conn, head: server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    api = FakeAPI(server.url)
    with pytest.raises(InputValidationError) as raised:
        await send(stack, api, api.post({"input": {"steps": [1, 2, {"cfg": value}]}}))
    assert "body.input.steps[2].cfg" in str(raised.value)
    assert server.requests == []
    assert await send(stack, api, api.post({"input": {"cfg": 7.5}})) == {}  # finite numbers still go


async def test_an_absurdly_nested_input_is_refused_not_crashed_on(stack: str, serve: Any) -> None:
    server = serve(lambda conn, head: None)
    body: Any = 1
    for _ in range(5000):
        body = [body]
    api = FakeAPI(server.url)
    with pytest.raises(InputValidationError, match="nests deeper"):
        await send(stack, api, api.post(body))
    assert server.requests == []


# -- 6. both stacks agree ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://my-deploy-abc.octoai.run/predict", True),
        ("https://a.b.octoai.run/predict", True),
        ("https://image.octoai.run/generate/sdxl", True),
        ("https://octoai.run/predict", False),
        ("https://evil-octoai.run/predict", False),
        ("https://octoai.run.evil.test/predict", False),
    ],
)
async def test_lean_sender_guards_hosts_like_the_httpx_shells(url: str, allowed: bool) -> None:
    api = OctoAIAPI()
    call = Call("predict", "POST", url, lambda result: result.status, json={"x": 1})
    sender = LeanSender(api, Credentials.of(KEY), 2)
    lean_ok = True
    try:
        sender._check(call)
    except ConfigurationError:
        lean_ok = False
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    httpx_ok = True
    with SyncClient(api, Credentials.of(KEY), settings(), transport=transport) as client:
        assert isinstance(client.auth, BearerAuth)
        try:
            client.send(call)
        except ConfigurationError:
            httpx_ok = False
    assert lean_ok is httpx_ok is allowed
    assert bool(seen) is allowed


async def test_lean_sender_takes_the_connections_timeouts_and_proxies() -> None:
    http = settings(connect_timeout=3.5, read_timeout=42.0)
    async with LeanSender(FakeAPI("http://127.0.0.1:9"), Credentials.of(KEY), 2, settings=http) as sender:
        session = sender._session
        assert session.timeout.sock_connect == 3.5 and session.timeout.connect == 3.5
        assert session.timeout.sock_read == 42.0


async def test_lean_sender_takes_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY and NO_PROXY are honoured as the httpx shells honour them, read once per origin."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,internal.test")
    async with LeanSender(
        FakeAPI("http://127.0.0.1:9"), Credentials.of(KEY), 2, settings=settings()
    ) as sender:
        assert str(sender._proxy("https://api.vendor.test/v1/x?a=1")[0]) == "http://proxy.test:3128"
        assert sender._proxy("http://127.0.0.1:9/x")[0] is None
        assert sender._proxy("https://models.internal.test/x")[0] is None
        monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.test:1")
        assert str(sender._proxy("https://api.vendor.test/other")[0]) == "http://proxy.test:3128"  # cached


# -- the connection extras ---------------------------------------------------------------------------


def test_connection_extras_set_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    extra = {
        "max_response_bytes": 1000,
        "call_deadline": "2.5",
        "max_download_bytes": 5,
        "download_deadline": 9,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_LIMITS",
        json.dumps({"conn_type": "edgeinfer_theta", "password": KEY, "extra": extra}),
    )
    hook = ThetaHook("theta_limits")
    http = hook.http_settings(hook.connection)
    assert (http.max_response_bytes, http.call_deadline, http.max_download_bytes, http.download_deadline) == (
        1000,
        2.5,
        5,
        9.0,
    )
    for bad in ({"call_deadline": "nan"}, {"max_response_bytes": 0}, {"download_deadline": -1}):
        monkeypatch.setenv(
            "AIRFLOW_CONN_THETA_LIMITS",
            json.dumps({"conn_type": "edgeinfer_theta", "password": KEY, "extra": bad}),
        )
        hook = ThetaHook("theta_limits")
        with pytest.raises(ConfigurationError):
            hook.http_settings(hook.connection)


def test_an_unasked_content_encoding_is_malformed(serve: Any) -> None:
    server = serve(lambda conn, head: None)
    server.reply = lambda conn, head: server.send(
        conn, b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}"
    )
    api = FakeAPI(server.url)
    with (
        SyncClient(api, Credentials.of(KEY), settings()) as client,
        pytest.raises(UnexpectedResponseError) as raised,
    ):
        client.send(api.get())
    assert raised.value.code == MALFORMED_BODY


def redirect(server: Hostile, location: bytes) -> Reply:
    return lambda conn, head: server.send(
        # Connection: close, as the server hangs up after each answer (no reuse racing the close).
        conn,
        b"HTTP/1.1 302 Found\r\nLocation: "
        + location
        + b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )


def test_media_download_follows_only_redirects_it_may_and_not_for_ever(serve: Any) -> None:
    target = serve(lambda conn, head: None)
    target.reply = lambda conn, head: target.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    hop = serve(lambda conn, head: None)
    hop.reply = redirect(hop, (target.url + "/b.png").encode())
    out = io.BytesIO()
    assert download_media(hop.url + "/a.png", out) == 2 and out.getvalue() == b"ok"

    internal = serve(lambda conn, head: None)
    internal.reply = redirect(internal, b"http://169.254.169.254/latest/meta-data")
    with pytest.raises(UnexpectedResponseError, match="refusing to follow the redirect"):
        download_media(internal.url + "/a.png", io.BytesIO())

    loop = serve(lambda conn, head: None)
    loop.reply = redirect(loop, (loop.url + "/again").encode())
    with pytest.raises(UnexpectedResponseError, match="redirected more than"):
        download_media(loop.url + "/a.png", io.BytesIO())
    with pytest.raises(UnexpectedResponseError, match="https required"):
        download_media("http://example.invalid/a.png", io.BytesIO())


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_token_exchange_connection_bounds_its_answers_too(mode: str, serve: Any) -> None:
    """The exchange's auth flow must not read every answer whole before the shell counts it."""
    total = 64 * MiB
    server = serve(lambda conn, head: None)
    big = undeclared_body(server, total)

    def reply(conn: socket.socket, head: bytes) -> None:
        if head.startswith(b"POST /token"):
            server.send(
                conn, b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 15\r\n\r\n{"token": "tk"}'
            )
        else:
            big(conn, head)

    server.reply = reply
    api = FakeAPI(server.url)
    auth = TokenExchangeAuth(
        lambda: httpx.Request("POST", server.url + "/token"),
        lambda result: (api.json_body(result)["token"], 3600.0),
        api.allowed_hosts(),
        "fake",
    )
    small = settings(max_response_bytes=MiB)
    with pytest.raises(UnexpectedResponseError) as raised:
        if mode == "sync":
            with SyncClient(api, Credentials.of(KEY), small, auth=auth) as client:
                client.send(api.get())
        else:
            async with AsyncClient(api, Credentials.of(KEY), small, auth=auth) as aclient:
                await aclient.send(api.get())
    assert raised.value.code == RESPONSE_TOO_LARGE
    assert auth.exchanges == 1
    assert server.sent < total / 4


def test_the_batch_fan_out_gives_the_lean_sender_the_connections_settings() -> None:
    from airflow_provider_edgeinfer.batch.fanout import sender_for
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    api = ThetaAPI("http://127.0.0.1:9", project_id="prj_x")
    http = settings(connect_timeout=2.0, max_response_bytes=5 * MiB, call_deadline=7.0)
    sender = sender_for(api, Credentials.of(KEY), http, api.submit("whisper", {"audio_filename": "a"}))
    assert isinstance(sender, LeanSender)
    assert sender.settings == http


@pytest.mark.parametrize("stack", ["sync", "async-aiohttp", "async-httpx"])
@pytest.mark.parametrize("answer", ["prompt", "drip"])
async def test_an_upload_may_outlast_the_deadline_but_its_answer_may_not(
    stack: str, answer: str, serve: Any
) -> None:
    server = serve(lambda conn, head: None)
    if answer == "prompt":
        server.reply = lambda conn, head: server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    else:
        server.reply = drip(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    chunks = 8

    def body() -> Iterator[bytes]:
        for _ in range(chunks):
            time.sleep(0.12)  # about 1 s in all, twice the deadline
            yield b"x" * 1024

    api = FakeAPI(server.url)
    call = Call(
        "upload",
        "PUT",
        server.url + "/file",
        api.json_body,
        headers={"Content-Length": str(chunks * 1024)},
        stream=body,
    )
    started = time.monotonic()
    if answer == "prompt":
        assert await send(stack, api, call, settings(call_deadline=0.5)) == {}
        assert time.monotonic() - started > 0.9
        return
    with pytest.raises(VendorTimeoutError) as raised:
        await send(stack, api, call, settings(call_deadline=0.5))
    assert raised.value.code == DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3.0
