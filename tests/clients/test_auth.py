"""Credentials on the wire: host guard, bearer header, cached token exchange (sync and async)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import (
    BearerAuth,
    Call,
    Credentials,
    HttpResult,
    TokenExchangeAuth,
    VendorAPI,
    host_allowed,
)
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    UnexpectedResponseError,
)

KEY = "key-0123456789-secret"
SETTINGS = HttpSettings(retry=RetrySettings(max_attempts=3, initial_delay=0, max_delay=0))


class API(VendorAPI):
    vendor: ClassVar[str] = "fake"

    def __init__(self, *bases: str) -> None:
        self.bases = bases or ("https://api.fake.test",)

    def base_urls(self) -> tuple[str, ...]:
        return self.bases

    def get(self, url: str) -> Call[Any]:
        return Call("get", "GET", url, self.json_body)


class Counting:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


async def send(
    mode: str, api: VendorAPI, handler: Any, call: Call[Any], auth: httpx.Auth | None = None
) -> Any:
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with SyncClient(api, Credentials.of(KEY), SETTINGS, transport=transport, auth=auth) as client:
            return client.send(call)
    async with AsyncClient(api, Credentials.of(KEY), SETTINGS, transport=transport, auth=auth) as aclient:
        return await aclient.send(call)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- host patterns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("api.fake.test", {"api.fake.test"}, True),
        ("api.fake.test:8443", {"api.fake.test"}, False),
        ("api.fake.test:8443", {"api.fake.test:8443"}, True),
        ("evil.test", {"api.fake.test"}, False),
        ("my-deploy.octoai.run", {"*.octoai.run"}, True),
        ("a.b.octoai.run", {"*.octoai.run"}, True),
        ("octoai.run", {"*.octoai.run"}, False),
        ("evil-octoai.run", {"*.octoai.run"}, False),
        ("octoai.run.evil.test", {"*.octoai.run"}, False),
        ("x.octoai.run", {"image.octoai.run", "async.octoai.run"}, False),
    ],
)
def test_host_allowed(host: str, allowed: set[str], expected: bool) -> None:
    assert host_allowed(host, frozenset(allowed)) is expected


# -- BearerAuth ------------------------------------------------------------------------------------


async def test_bearer_sent_to_own_host(mode: str) -> None:
    handler = Counting()
    await send(mode, API(), handler, API().get("https://api.fake.test/v1/x"))
    assert handler.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/steal",
        "https://api.fake.test.evil.test/x",
        "https://api.fake.test:8443/x",
        "http://other.fake.test/x",
    ],
)
async def test_bearer_refuses_foreign_host_and_sends_nothing(mode: str, url: str) -> None:
    handler = Counting()
    with pytest.raises(ConfigurationError) as info:
        await send(mode, API(), handler, API().get(url))
    assert handler.requests == []  # the request never left
    assert "refusing to send the credential" in str(info.value)
    assert KEY not in str(info.value)


async def test_bearer_with_wildcard_pattern(mode: str) -> None:
    handler = Counting()
    auth = BearerAuth(KEY, frozenset({"*.octoai.run"}), "octoai")
    await send(mode, API(), handler, API().get("https://my-model-abc.octoai.run/predict"), auth=auth)
    assert handler.requests[0].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(ConfigurationError):
        await send(mode, API(), handler, API().get("https://octoai.run.evil.test/predict"), auth=auth)
    assert len(handler.requests) == 1


async def test_bearer_explicit_default_port_in_base_url(mode: str) -> None:
    # A connection host written as https://host:443 names the same host httpx sends to.
    handler = Counting()
    api = API("https://api.fake.test:443")
    await send(mode, api, handler, api.get("https://api.fake.test:443/v1/x"))
    await send(mode, api, handler, api.get("https://api.fake.test/v1/x"))
    assert len(handler.requests) == 2


async def test_unauthenticated_call_skips_the_guard(mode: str) -> None:
    # Presigned URLs point elsewhere on purpose and never carry the key.
    handler = Counting()
    call = Call("put", "PUT", "https://bucket.s3.test/u?sig=1", lambda r: r.status, authenticated=False)
    assert await send(mode, API(), handler, call) == 200
    assert "authorization" not in handler.requests[0].headers


def test_bearer_repr_hides_token() -> None:
    auth = BearerAuth(KEY, frozenset({"api.fake.test"}), "fake")
    assert KEY not in repr(auth)
    assert "api.fake.test" in repr(auth)


# -- TokenExchangeAuth -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """Issues t1, t2, ... from /auth/token; /data accepts only the newest unrevoked token."""

    def __init__(self, expires_in: float = 3600.0) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.data_calls = 0
        self.revoked: set[str] = set()
        self.always_401 = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            assert json.loads(request.content) == {"api_key": KEY, "secret": "s"}
            token = f"t{len(self.issued) + 1}"
            self.issued.append(token)
            return httpx.Response(200, json={"token": token, "expires_in": self.expires_in})
        self.data_calls += 1
        sent = request.headers.get("authorization", "")
        if (
            self.always_401
            or not self.issued
            or sent != f"Bearer {self.issued[-1]}"
            or self.issued[-1] in self.revoked
        ):
            return httpx.Response(401, json={"message": "token expired"})
        return httpx.Response(200, json={"token_used": sent[7:]})

    def auth(
        self, clock: FakeClock, hosts: frozenset[str] = frozenset({"api.fake.test"})
    ) -> TokenExchangeAuth:
        def token_request() -> httpx.Request:
            return httpx.Request(
                "POST", "https://api.fake.test/auth/token", json={"api_key": KEY, "secret": "s"}
            )

        def read_token(result: HttpResult) -> tuple[str, float]:
            if result.status != 200:
                raise AuthenticationError("exchange refused", vendor="fake", http_status=result.status)
            body = json.loads(result.content)
            if "token" not in body:
                raise UnexpectedResponseError("no token", vendor="fake")
            return body["token"], float(body["expires_in"])

        return TokenExchangeAuth(token_request, read_token, hosts, "fake", renew_margin=60.0, clock=clock)


class Session:
    """One client (sync or async) kept open across several calls, like a hook does."""

    def __init__(self, mode: str, server: TokenServer, auth: TokenExchangeAuth) -> None:
        self.mode = mode
        transport = httpx.MockTransport(server)
        self.sync = SyncClient(API(), Credentials.of(KEY), SETTINGS, transport=transport, auth=auth)
        self.aio = AsyncClient(API(), Credentials.of(KEY), SETTINGS, transport=transport, auth=auth)

    async def get(self) -> Any:
        call = API().get("https://api.fake.test/data")
        if self.mode == "sync":
            return self.sync.send(call)
        return await self.aio.send(call)

    async def close(self) -> None:
        self.sync.close()
        await self.aio.aclose()


async def test_one_exchange_serves_many_calls(mode: str) -> None:
    server, clock = TokenServer(), FakeClock()
    auth = server.auth(clock)
    session = Session(mode, server, auth)
    try:
        for _ in range(5):
            clock.now += 10
            assert (await session.get()) == {"token_used": "t1"}
    finally:
        await session.close()
    assert auth.exchanges == 1
    assert server.issued == ["t1"]
    assert server.data_calls == 5


async def test_renews_before_expiry(mode: str) -> None:
    server, clock = TokenServer(expires_in=100.0), FakeClock()
    auth = server.auth(clock)
    session = Session(mode, server, auth)
    try:
        assert (await session.get())["token_used"] == "t1"
        clock.now += 39  # 61 s left, margin 60: still good
        assert (await session.get())["token_used"] == "t1"
        clock.now += 2  # 59 s left: renew before it can expire in flight
        assert (await session.get())["token_used"] == "t2"
    finally:
        await session.close()
    assert auth.exchanges == 2
    assert server.data_calls == 3  # no call was wasted on a stale token


async def test_renews_once_on_401(mode: str) -> None:
    server, clock = TokenServer(), FakeClock()
    auth = server.auth(clock)
    session = Session(mode, server, auth)
    try:
        assert (await session.get())["token_used"] == "t1"
        server.revoked.add("t1")
        assert (await session.get())["token_used"] == "t2"
    finally:
        await session.close()
    assert auth.exchanges == 2
    assert server.data_calls == 3


async def test_persistent_401_renews_only_once(mode: str) -> None:
    server, clock = TokenServer(), FakeClock()
    server.always_401 = True
    auth = server.auth(clock)
    session = Session(mode, server, auth)
    try:
        with pytest.raises(AuthenticationError):
            await session.get()
    finally:
        await session.close()
    assert auth.exchanges == 2
    assert server.data_calls == 2


async def test_failed_exchange_is_the_mapped_error(mode: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "bad secret"})

    auth = TokenServer().auth(FakeClock())
    with pytest.raises(AuthenticationError, match="exchange refused"):
        await send(mode, API(), refuse, API().get("https://api.fake.test/data"), auth=auth)
    assert auth.exchanges == 0


async def test_token_exchange_refuses_foreign_host(mode: str) -> None:
    server = TokenServer()
    auth = server.auth(FakeClock())
    with pytest.raises(ConfigurationError):
        await send(mode, API(), server, API().get("https://evil.test/data"), auth=auth)
    assert server.issued == []
    assert server.data_calls == 0


async def test_invalidate_forces_a_new_exchange(mode: str) -> None:
    server, clock = TokenServer(), FakeClock()
    auth = server.auth(clock)
    session = Session(mode, server, auth)
    try:
        await session.get()
        auth.invalidate()
        assert (await session.get())["token_used"] == "t2"
    finally:
        await session.close()
    assert auth.exchanges == 2
    assert "t2" not in repr(auth)


# -- single flight on a shared async client -----------------------------------------------------


def slow_token_server(server: TokenServer) -> Any:
    """The same server, answering asynchronously, so concurrent calls overlap mid-exchange."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01 if request.url.path == "/auth/token" else 0)
        return server(request)

    return handler


async def test_concurrent_first_calls_share_one_exchange() -> None:
    server = TokenServer()
    auth = server.auth(FakeClock())
    transport = httpx.MockTransport(slow_token_server(server))
    async with AsyncClient(API(), Credentials.of(KEY), SETTINGS, transport=transport, auth=auth) as client:
        answers = await asyncio.gather(
            *(client.send(API().get("https://api.fake.test/data")) for _ in range(20))
        )
    assert answers == [{"token_used": "t1"}] * 20
    assert auth.exchanges == 1
    assert server.issued == ["t1"]


async def test_concurrent_401s_renew_once() -> None:
    server = TokenServer()
    auth = server.auth(FakeClock())
    transport = httpx.MockTransport(slow_token_server(server))
    async with AsyncClient(API(), Credentials.of(KEY), SETTINGS, transport=transport, auth=auth) as client:
        await client.send(API().get("https://api.fake.test/data"))
        server.revoked.add("t1")
        answers = await asyncio.gather(
            *(client.send(API().get("https://api.fake.test/data")) for _ in range(20))
        )
    assert answers == [{"token_used": "t2"}] * 20
    assert auth.exchanges == 2
