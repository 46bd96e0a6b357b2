"""The sync and async shells with ``httpx.MockTransport``: parsing, error mapping, retries, secrets."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel

from airflow_provider_edgeinfer.clients import retry
from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, Page, VendorAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings, Safety
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConflictError,
    EdgeInferError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
    VendorValidationError,
)

KEY = "sk-test-SUPERSECRET-0123456789"
BASE = "https://api.fake.test"
Handler = Callable[[httpx.Request], httpx.Response]


class Thing(BaseModel):
    name: str
    size: int


class FakeAPI(VendorAPI):
    vendor: ClassVar[str] = "fake"

    def base_urls(self) -> tuple[str, ...]:
        return (BASE,)

    def get_thing(self, safety: Safety = Safety.IDEMPOTENT, *, path: str = "/thing") -> Call[Thing]:
        return Call("get_thing", "GET", BASE + path, self.parser(Thing), safety=safety, request_id="thing_1")

    def make_thing(self, safety: Safety = Safety.CREATES_WORK) -> Call[Thing]:
        return Call("make_thing", "POST", BASE + "/thing", self.parser(Thing), safety=safety, json={"n": 1})

    def list_things(self, page: int = 0, last: int = 2) -> Call[Page[Thing]]:
        def parse(result: HttpResult) -> Page[Thing]:
            items = [self.model(Thing, t, result) for t in self.json_body(result)["items"]]
            return Page(items, self.list_things(page + 1, last) if page < last else None)

        return Call("list_things", "GET", f"{BASE}/things", parse, params={"page": page, "state": None})


def fast(max_attempts: int = 3) -> HttpSettings:
    return HttpSettings(retry=RetrySettings(max_attempts=max_attempts, initial_delay=0, max_delay=0))


class Recorder:
    """A MockTransport handler that answers from a list (the last answer repeats) and counts."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            if isinstance(answer, httpx.RequestError):
                answer._request = request
            raise answer
        if isinstance(answer, httpx.Response):  # a fresh copy: a response body is read once
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
        return answer(request)

    @property
    def calls(self) -> int:
        return len(self.requests)


def ok_thing(name: str = "a", size: int = 1) -> httpx.Response:
    return httpx.Response(200, json={"name": name, "size": size})


async def send(mode: str, handler: Recorder, call: Call[Any], settings: HttpSettings | None = None) -> Any:
    settings = settings or fast()
    if mode == "sync":
        with SyncClient(
            FakeAPI(), Credentials.of(KEY), settings, transport=httpx.MockTransport(handler)
        ) as c:
            return c.send(call)
    async with AsyncClient(
        FakeAPI(), Credentials.of(KEY), settings, transport=httpx.MockTransport(handler)
    ) as ac:
        return await ac.send(call)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # Zero delays are configured anyway; this makes sure no test ever sleeps for real.
    monkeypatch.setattr(retry, "backoff_delay", lambda *a, **k: 0.0)


def assert_no_secret(error: BaseException) -> None:
    for text in (str(error), repr(error), error.message if isinstance(error, EdgeInferError) else ""):
        assert KEY not in text
        assert "SUPERSECRET" not in text


# -- success ---------------------------------------------------------------------------------------


async def test_success_is_parsed_and_authenticated(mode: str) -> None:
    handler = Recorder(ok_thing("x", 3))
    thing = await send(mode, handler, FakeAPI().get_thing())
    assert thing == Thing(name="x", size=3)
    assert handler.calls == 1
    sent = handler.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"].startswith("airflow-provider-edgeinfer/")
    assert str(sent.url) == f"{BASE}/thing"


async def test_request_building(mode: str) -> None:
    handler = Recorder(ok_thing())
    call = Call(
        "op",
        "POST",
        f"{BASE}/p",
        FakeAPI().parser(Thing),
        json={"a": 1},
        params={"x": 1, "dropped": None},
        headers={"X-Extra": "yes"},
        authenticated=False,
        read_timeout=7.5,
    )
    await send(mode, handler, call)
    sent = handler.requests[0]
    assert "authorization" not in sent.headers
    assert sent.headers["x-extra"] == "yes"
    assert dict(sent.url.params) == {"x": "1"}
    assert json.loads(sent.content) == {"a": 1}
    assert sent.extensions["timeout"]["read"] == 7.5


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, VendorValidationError),
        (401, AuthenticationError),
        (402, QuotaExceededError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, VendorValidationError),
        (418, VendorAPIError),
        (422, VendorValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
async def test_status_maps_to_exception_class(mode: str, status: int, cls: type[EdgeInferError]) -> None:
    handler = Recorder(httpx.Response(status, json={"message": f"nope {status}"}))
    with pytest.raises(EdgeInferError) as info:
        await send(mode, handler, FakeAPI().get_thing(), fast(max_attempts=1))
    err = info.value
    assert type(err) is cls
    assert err.http_status == status
    assert err.vendor == "fake"
    assert err.operation == "get_thing"
    assert err.request_id == "thing_1"
    assert f"nope {status}" in str(err)


async def test_vendor_message_quoted_and_scrubbed(mode: str) -> None:
    body = {"error": f"key {KEY} is invalid; sent Authorization: Bearer {KEY}; api_key={KEY}"}
    handler = Recorder(httpx.Response(401, json=body))
    with pytest.raises(AuthenticationError) as info:
        await send(mode, handler, FakeAPI().get_thing())
    assert "is invalid" in str(info.value)
    assert_no_secret(info.value)
    assert handler.calls == 1  # 401 is not retried


async def test_non_json_error_body_is_quoted_and_truncated(mode: str) -> None:
    handler = Recorder(httpx.Response(502, text="<html>Bad gateway" + "x" * 5000 + "</html>"))
    with pytest.raises(ServerError) as info:
        await send(mode, handler, FakeAPI().get_thing(), fast(max_attempts=1))
    assert "Bad gateway" in str(info.value)
    assert len(info.value.message) <= 300


async def test_malformed_json_is_unexpected_response(mode: str) -> None:
    handler = Recorder(httpx.Response(200, content=b'{"name": "a", "si'))
    with pytest.raises(UnexpectedResponseError) as info:
        await send(mode, handler, FakeAPI().get_thing())
    assert "malformed JSON" in str(info.value)
    assert handler.calls == 3, "a garbled answer to a read is read again, up to max_attempts"


async def test_malformed_json_message_hides_the_query_string(mode: str) -> None:
    handler = Recorder(httpx.Response(200, content=b"not json"))
    call = FakeAPI().get_thing(path="/thing?signature=SIGNATURE-abcdef")
    with pytest.raises(UnexpectedResponseError) as info:
        await send(mode, handler, call)
    assert "SIGNATURE-abcdef" not in str(info.value)


async def test_shape_mismatch_is_unexpected_response(mode: str) -> None:
    handler = Recorder(httpx.Response(200, json={"name": "a", "size": "big"}))
    with pytest.raises(UnexpectedResponseError, match="size"):
        await send(mode, handler, FakeAPI().get_thing())


# -- retries ---------------------------------------------------------------------------------------


async def test_retry_after_is_honoured(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    used_backoff: list[int] = []
    monkeypatch.setattr(retry, "backoff_delay", lambda attempt, *a, **k: used_backoff.append(attempt) or 0.0)
    limited = httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"})
    handler = Recorder(limited, limited, ok_thing("late"))
    thing = await send(mode, handler, FakeAPI().get_thing(), fast(max_attempts=5))
    assert thing.name == "late"
    assert handler.calls == 3
    assert used_backoff == []  # the vendor's Retry-After decided the wait


async def test_rate_limit_gives_up_after_max_attempts(mode: str) -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "quota"}))
    with pytest.raises(RateLimitError) as info:
        await send(mode, handler, FakeAPI().get_thing(), fast(max_attempts=4))
    assert handler.calls == 4
    assert info.value.retry_after == 0.0


async def test_send_once_leaves_the_429_to_its_caller() -> None:
    """A poller's one attempt: no retry inside the client, the 429 and its Retry-After come out."""
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), ok_thing())
    async with AsyncClient(
        FakeAPI(), Credentials.of(KEY), fast(max_attempts=4), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(RateLimitError) as info:
            await client.send_once(FakeAPI().get_thing())
        assert handler.calls == 1 and info.value.retry_after == 7.0
        assert (await client.send_once(FakeAPI().get_thing())).name == "a"


async def test_429_on_create_is_retried(mode: str) -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0"}), ok_thing("made"))
    assert (await send(mode, handler, FakeAPI().make_thing())).name == "made"
    assert handler.calls == 2


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_transient_status_retried_on_idempotent(mode: str, status: int) -> None:
    handler = Recorder(httpx.Response(status, json={"message": "later"}), ok_thing())
    await send(mode, handler, FakeAPI().get_thing())
    assert handler.calls == 2


async def test_500_on_create_is_not_retried(mode: str) -> None:
    handler = Recorder(httpx.Response(500, json={"message": "oops"}), ok_thing())
    with pytest.raises(ServerError):
        await send(mode, handler, FakeAPI().make_thing())
    assert handler.calls == 1


async def test_503_with_retry_after_on_create_is_retried(mode: str) -> None:
    handler = Recorder(httpx.Response(503, headers={"Retry-After": "0"}), ok_thing())
    await send(mode, handler, FakeAPI().make_thing())
    assert handler.calls == 2


@pytest.mark.parametrize(
    ("safety", "attempts"),
    [(Safety.IDEMPOTENT, 3), (Safety.CREATES_WORK, 3), (Safety.NEVER, 1)],
)
async def test_connect_error_retried_except_never(mode: str, safety: Safety, attempts: int) -> None:
    handler = Recorder(httpx.ConnectError("connection refused"))
    with pytest.raises(VendorConnectionError) as info:
        await send(mode, handler, FakeAPI().make_thing(safety))
    assert handler.calls == attempts
    assert "https://api.fake.test/thing" in str(info.value)


async def test_connect_error_then_success(mode: str) -> None:
    handler = Recorder(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow connect"), ok_thing("ok"))
    assert (await send(mode, handler, FakeAPI().make_thing())).name == "ok"
    assert handler.calls == 3


async def test_the_retry_policy_is_asked_only_after_a_failure(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.clients import transport

    asked: list[Safety] = []

    def policy(safety: Safety, settings: RetrySettings, **kwargs: Any) -> dict[str, Any]:
        asked.append(safety)
        return retry.retry_kwargs(safety, settings, **kwargs)

    monkeypatch.setattr(transport, "retry_kwargs", policy)
    assert (await send(mode, Recorder(ok_thing("at once")), FakeAPI().get_thing())).name == "at once"
    assert asked == []
    handler = Recorder(httpx.ConnectError("refused"), ok_thing("second"))
    assert (await send(mode, handler, FakeAPI().make_thing())).name == "second"
    assert handler.calls == 2 and asked == [Safety.CREATES_WORK]


async def test_read_timeout_idempotent_retried_then_timeout_error(mode: str) -> None:
    handler = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(VendorTimeoutError):
        await send(mode, handler, FakeAPI().get_thing(), fast(max_attempts=3))
    assert handler.calls == 3


async def test_read_timeout_idempotent_recovers(mode: str) -> None:
    handler = Recorder(httpx.ReadTimeout("timed out"), ok_thing("second"))
    assert (await send(mode, handler, FakeAPI().get_thing())).name == "second"
    assert handler.calls == 2


@pytest.mark.parametrize("safety", [Safety.CREATES_WORK, Safety.NEVER])
@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("peer closed"), httpx.ReadError("reset")],
    ids=["read_timeout", "dropped", "read_error"],
)
async def test_lost_answer_on_create_is_outcome_unknown_after_one_attempt(
    mode: str, safety: Safety, failure: Exception
) -> None:
    handler = Recorder(failure, ok_thing())
    with pytest.raises(OutcomeUnknownError) as info:
        await send(mode, handler, FakeAPI().make_thing(safety), fast(max_attempts=5))
    assert handler.calls == 1
    assert "POST https://api.fake.test/thing" in str(info.value)
    assert info.value.operation == "make_thing"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(500),
    ],
)
async def test_never_is_never_retried(mode: str, answer: httpx.Response) -> None:
    handler = Recorder(answer, ok_thing())
    with pytest.raises(VendorAPIError):
        await send(mode, handler, FakeAPI().make_thing(Safety.NEVER), fast(max_attempts=5))
    assert handler.calls == 1


async def test_retry_log_lines_carry_no_secret(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    handler = Recorder(httpx.Response(503, json={"message": f"bad key {KEY}"}), ok_thing())
    with caplog.at_level(logging.WARNING, logger="airflow_provider_edgeinfer.clients"):
        await send(mode, handler, FakeAPI().get_thing())
    assert "retrying in" in caplog.text
    assert KEY not in caplog.text


# -- secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError(f"refused, Authorization: Bearer {KEY}"),
        httpx.ReadTimeout(f"timed out for {KEY}"),
        httpx.Response(400, json={"message": f"key {KEY} lacks scope"}),
        httpx.Response(500, text=f"traceback ... api_key={KEY}"),
        httpx.Response(200, content=f"garbage {KEY}".encode()),
    ],
)
@pytest.mark.parametrize("safety", list(Safety))
async def test_credential_never_in_errors(mode: str, answer: Any, safety: Safety) -> None:
    handler = Recorder(answer)
    with pytest.raises(EdgeInferError) as info:
        await send(mode, handler, FakeAPI().make_thing(safety), fast(max_attempts=2))
    assert_no_secret(info.value)
    assert info.value.__cause__ is None or KEY not in str(info.value.__cause__)


def test_reprs_carry_no_secret() -> None:
    creds = Credentials.of(KEY, "secret-" + KEY)
    with SyncClient(FakeAPI(), creds, transport=httpx.MockTransport(Recorder(ok_thing()))) as client:
        for text in (repr(client), repr(creds), repr(client.auth), str(creds)):
            assert KEY not in text
    assert repr(client) == "SyncClient(vendor='fake')"


# -- paging ----------------------------------------------------------------------------------------


def _pages(request: httpx.Request) -> httpx.Response:
    page = int(request.url.params["page"])
    assert "state" not in request.url.params
    return httpx.Response(200, json={"items": [{"name": f"p{page}-{i}", "size": i} for i in range(2)]})


def test_iterate_follows_next_call_sync() -> None:
    handler = Recorder(_pages)
    with SyncClient(FakeAPI(), Credentials.of(KEY), fast(), transport=httpx.MockTransport(handler)) as client:
        names = [t.name for t in client.iterate(FakeAPI().list_things(last=2))]
    assert names == ["p0-0", "p0-1", "p1-0", "p1-1", "p2-0", "p2-1"]
    assert [r.url.params["page"] for r in handler.requests] == ["0", "1", "2"]


async def test_iterate_follows_next_call_async() -> None:
    handler = Recorder(_pages)
    async with AsyncClient(
        FakeAPI(), Credentials.of(KEY), fast(), transport=httpx.MockTransport(handler)
    ) as ac:
        names = [t.name async for t in ac.iterate(FakeAPI().list_things(last=1))]
        pages = [p async for p in ac.pages(FakeAPI().list_things(page=1, last=1))]
    assert names == ["p0-0", "p0-1", "p1-0", "p1-1"]
    assert len(pages) == 1
    assert pages[0].next_call is None


# -- lifecycle -------------------------------------------------------------------------------------


async def test_async_client_closes_cleanly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        client = AsyncClient(
            FakeAPI(), Credentials.of(KEY), fast(), transport=httpx.MockTransport(Recorder(ok_thing()))
        )
        async with client:
            assert not client.closed
            await client.send(FakeAPI().get_thing())
        assert client.closed
        del client
        gc.collect()


async def test_async_client_closed_refuses_calls() -> None:
    client = AsyncClient(
        FakeAPI(), Credentials.of(KEY), fast(), transport=httpx.MockTransport(Recorder(ok_thing()))
    )
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.send(FakeAPI().get_thing())


def test_sync_client_without_credentials_sends_no_auth() -> None:
    handler = Recorder(ok_thing())
    with SyncClient(FakeAPI(), None, fast(), transport=httpx.MockTransport(handler)) as client:
        assert client.auth is None
        client.send(FakeAPI().get_thing())
    assert "authorization" not in handler.requests[0].headers


# -- the default async transport (aiohttp under httpx) against a real socket --------------------


async def test_default_async_transport_keeps_the_outcome_rules(edgeinfer_emulator: Any) -> None:
    """A refused connection is "never sent"; a server hanging up mid-answer on a POST is "unknown"."""
    import socket

    from httpx_aiohttp import AiohttpTransport

    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.exceptions import OutcomeUnknownError, VendorConnectionError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with AsyncClient(
        ThetaAPI(f"http://127.0.0.1:{closed_port}"), Credentials.of(KEY), fast()
    ) as client:
        assert isinstance(client._http._transport, AiohttpTransport)
        with pytest.raises(VendorConnectionError):
            await client.send(client.api.get_request("infr_rqst_" + "0" * 26))

    edgeinfer_emulator.state.scripted["theta"].append({"kind": "drop", "path": "/infer_request/flux"})
    api = ThetaAPI(edgeinfer_emulator.vendor_url("theta"))
    async with AsyncClient(api, Credentials.of("emulator-theta-key"), fast()) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.send(api.create_request("flux", {"prompt": "p"}))
    assert edgeinfer_emulator.state.snapshot()["requests"]["theta.create_request"] == 1  # not repeated


async def test_default_async_transport_hang_up_before_answer_is_outcome_unknown() -> None:
    """aiohttp's ServerDisconnectedError (sent, then no answer) must not pass for "never sent"."""
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.exceptions import OutcomeUnknownError

    received = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))  # the request arrived...
        writer.close()  # ...and the server went away without a word
        await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        api = ThetaAPI(f"http://127.0.0.1:{port}")
        async with AsyncClient(api, Credentials.of(KEY), fast()) as client:
            with pytest.raises(OutcomeUnknownError):
                await client.send(api.create_request("flux", {"prompt": "p"}))
    finally:
        server.close()
        await server.wait_closed()
    assert len(received) == 1  # a create that may have been seen is never repeated
