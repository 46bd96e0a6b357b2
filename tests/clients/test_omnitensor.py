"""OmniTensor client against the emulator over loopback: every call, sync and async, tokens, streams."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, JobState, TokenExchangeAuth
from airflow_provider_edgeinfer.clients.omnitensor import (
    UPLOAD_CHUNK_BYTES,
    OmniTensorAPI,
    base64_length,
)
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import EmulatorState
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    EdgeInferError,
    InputValidationError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorValidationError,
)

VENDOR = "omnitensor"
SETTINGS = HttpSettings(read_timeout=10.0, retry=RetrySettings(initial_delay=0, max_delay=0))


def _payload(size: int, seed: int = 3) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def state(emu: EmulatorServer) -> Iterator[EmulatorState]:
    # The fixture's reset leaves keys and token lifetime alone: put back whatever a test changes.
    state = emu.state
    keys, secret, ttl = dict(state.keys), state.omnitensor_secret, state.omnitensor_token_ttl
    yield state
    state.keys.update(keys)
    state.omnitensor_secret, state.omnitensor_token_ttl = secret, ttl


@pytest.fixture
def api(emu: EmulatorServer) -> OmniTensorAPI:
    # The token clock is the emulator's, so advancing it ages the client's token too.
    return OmniTensorAPI(emu.vendor_url(VENDOR), token_clock=emu.state.clock.now)


@pytest.fixture
def creds(state: EmulatorState) -> Credentials:
    return Credentials.of(state.keys[VENDOR], state.omnitensor_secret)


@pytest.fixture
def client(api: OmniTensorAPI, creds: Credentials) -> Iterator[SyncClient[OmniTensorAPI]]:
    with SyncClient(api, creds, SETTINGS) as c:
        yield c


@pytest.fixture
async def aclient(api: OmniTensorAPI, creds: Credentials) -> AsyncIterator[AsyncClient[OmniTensorAPI]]:
    async with AsyncClient(api, creds, SETTINGS) as c:
        yield c


def _count(state: EmulatorState, op: str) -> int:
    return state.requests[f"{VENDOR}.{op}"]


def _tokens(state: EmulatorState) -> list[str]:
    return list(state.tables["omnitensor.tokens"])


def _exchanges(client: SyncClient[Any] | AsyncClient[Any]) -> int:
    auth = client.auth
    assert isinstance(auth, TokenExchangeAuth)
    return auth.exchanges


# -- tokens -----------------------------------------------------------------------------------


def test_token_is_exchanged_once_for_many_calls(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    for _ in range(5):
        client.send(client.api.balance())
    assert _count(state, "auth_token") == 1
    assert _count(state, "balance") == 5
    assert _exchanges(client) == 1


async def test_token_is_exchanged_once_for_many_async_calls(
    aclient: AsyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    for _ in range(5):
        await aclient.send(aclient.api.balance())
    assert _count(state, "auth_token") == 1
    assert _exchanges(aclient) == 1


def test_token_is_renewed_before_it_expires(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    state.omnitensor_token_ttl = 120.0
    client.send(client.api.balance())
    state.clock.advance(59)  # 61 s left: still outside the 60 s renewal margin
    client.send(client.api.balance())
    assert _count(state, "auth_token") == 1
    state.clock.advance(2)  # 59 s left: renewed before use, so the vendor never sees a dying token
    client.send(client.api.balance())
    assert _count(state, "auth_token") == 2
    assert _count(state, "balance") == 3  # no call was refused and repeated


def test_token_is_renewed_once_on_401(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    client.send(client.api.balance())
    state.tables["omnitensor.tokens"].clear()  # the vendor forgot every token (restart, revocation)
    balance = client.send(client.api.balance())
    assert balance.balance == Decimal("1250.50")
    assert _count(state, "auth_token") == 2
    assert _count(state, "balance") == 3  # the refused call, then its one repetition


async def test_async_token_is_renewed_once_on_401(
    aclient: AsyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    await aclient.send(aclient.api.balance())
    state.tables["omnitensor.tokens"].clear()
    await aclient.send(aclient.api.balance())
    assert _count(state, "auth_token") == 2
    assert _count(state, "balance") == 3


def test_a_second_401_is_an_authentication_error(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    client.send(client.api.balance())
    state.tables["omnitensor.tokens"].clear()
    state.keys[VENDOR] = "rotated-key-the-connection-does-not-know"
    with pytest.raises(AuthenticationError) as caught:
        client.send(client.api.balance())
    assert caught.value.http_status == 401
    assert caught.value.code == "UNAUTHORIZED"
    assert _count(state, "auth_token") == 2  # renewed once, not in a loop


def test_long_lived_client_with_wall_clock_survives_expiry(
    emu: EmulatorServer, creds: Credentials, state: EmulatorState
) -> None:
    # The client's own clock does not move while the vendor's does: only the 401 path can save it.
    state.omnitensor_token_ttl = 3600.0
    api = OmniTensorAPI(emu.vendor_url(VENDOR))
    with SyncClient(api, creds, SETTINGS) as client:
        for _ in range(4):
            client.send(api.balance())
            state.clock.advance(3601)
        client.send(api.balance())
    assert _count(state, "balance") == 5 + 4
    assert _count(state, "auth_token") == 5


def test_long_lived_client_renews_ahead_of_every_expiry(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    state.omnitensor_token_ttl = 300.0
    for _ in range(12):
        client.send(client.api.balance())
        state.clock.advance(250)
    assert _count(state, "balance") == 12  # never a refused call
    assert _count(state, "auth_token") == 12


def test_missing_secret_is_a_configuration_error(api: OmniTensorAPI, state: EmulatorState) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        api.build_auth(Credentials.of(state.keys[VENDOR]))
    with pytest.raises(ConfigurationError, match="secret"):
        SyncClient(api, Credentials.of(state.keys[VENDOR]), SETTINGS)


def test_wrong_secret_is_refused_without_leaking(api: OmniTensorAPI, state: EmulatorState) -> None:
    secret = "wrong-secret-0123456789"
    creds = Credentials.of(state.keys[VENDOR], secret)
    with SyncClient(api, creds, SETTINGS) as client, pytest.raises(AuthenticationError) as caught:
        client.send(api.balance())
    assert caught.value.operation == "auth_token"
    for text in (str(caught.value), repr(caught.value), repr(client), repr(client.auth), repr(creds)):
        assert secret not in text
        assert state.keys[VENDOR] not in text


def test_no_credential_or_token_in_errors_or_reprs(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, creds: Credentials, tmp_path: Path
) -> None:
    errors: list[EdgeInferError] = []
    calls: list[Call[Any]] = [
        client.api.inference("no-such-model", {"text": "x"}),
        client.api.dataset_metadata("ds_missing"),
        client.api.transfer("acct_other", "999999.00"),
    ]
    for call in calls:
        with pytest.raises(EdgeInferError) as caught:
            client.send(call)
        errors.append(caught.value)
    state.scripted[VENDOR].append({"kind": "drop", "path": "/account/transfer"})
    with pytest.raises(OutcomeUnknownError) as dropped:
        client.send(client.api.transfer("acct_other", "1.00"))
    errors.append(dropped.value)
    secrets = [*creds.values(), *_tokens(state)]
    assert len(secrets) == 3
    texts = [t for e in errors for t in (str(e), repr(e))]
    texts += [repr(client), repr(client.api), repr(client.auth), repr(creds)]
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- models -----------------------------------------------------------------------------------


def _model_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = _payload(size)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    return path, data


def test_model_upload_body_is_a_bounded_stream_with_the_right_length(
    api: OmniTensorAPI, tmp_path: Path
) -> None:
    path, data = _model_file(tmp_path, 5 * UPLOAD_CHUNK_BYTES + 7)
    call = api.upload_model(path, "m", framework="onnx", version="1", description='quote " and "file": "x"')
    assert call.content is None and call.json is None
    stream = call.stream
    assert stream is not None
    assert inspect.isgenerator(stream())  # produced lazily, never materialized
    sizes = []
    body = bytearray()
    for chunk in stream():
        sizes.append(len(chunk))
        body += chunk
    assert max(sizes) <= base64_length(UPLOAD_CHUNK_BYTES)
    assert call.headers is not None and int(call.headers["Content-Length"]) == len(body)
    decoded = json.loads(bytes(body))
    assert decoded["file"] and decoded["config"] == {"framework": "onnx", "version": "1"}
    assert decoded["description"] == 'quote " and "file": "x"'
    assert base64.b64decode(decoded["file"]) == data
    assert b"".join(stream()) == bytes(body)  # re-creatable: a retry or a 401 sends it again


@pytest.mark.parametrize("size", [0, 1, 2, 3, UPLOAD_CHUNK_BYTES + 1, 3 * UPLOAD_CHUNK_BYTES + 2])
def test_model_upload_arrives_intact(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path, size: int
) -> None:
    path, data = _model_file(tmp_path, size)
    uploaded = client.send(client.api.upload_model(path, "intact", framework="pytorch", version="2.1"))
    assert uploaded.model_id.startswith("mdl_")
    assert state.read_blob(uploaded.model_id) == data
    assert state.blobs[uploaded.model_id].sha256 == hashlib.sha256(data).hexdigest()


async def test_async_model_upload_arrives_intact(
    aclient: AsyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, data = _model_file(tmp_path, 4 * UPLOAD_CHUNK_BYTES + 5)
    uploaded = await aclient.send(aclient.api.upload_model(path, "async", framework="onnx", version="1"))
    assert state.read_blob(uploaded.model_id) == data
    listed = [m.model_id async for m in aclient.iterate(aclient.api.list_models(limit=2))]
    assert uploaded.model_id in listed


def test_model_upload_is_streamed_again_after_a_401(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    path, data = _model_file(tmp_path, 2 * UPLOAD_CHUNK_BYTES + 1)
    client.send(client.api.balance())
    state.tables["omnitensor.tokens"].clear()
    uploaded = client.send(client.api.upload_model(path, "again", framework="onnx", version="1"))
    assert _count(state, "upload_model") == 2
    assert state.read_blob(uploaded.model_id) == data


def test_model_upload_memory_does_not_grow_with_the_file(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    size = 8 * 1024 * 1024
    path, _ = _model_file(tmp_path, size)
    client.send(client.api.balance())  # token and connection first: measure the upload alone
    tracemalloc.start()
    try:
        uploaded = client.send(client.api.upload_model(path, "big", framework="onnx", version="1"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.blobs[uploaded.model_id].size == size
    # The whole body would be ~11 MB (and the file 8 MB); both ends together stay far below.
    assert peak < size // 4


def test_model_over_the_limit_is_refused_before_any_request(emu: EmulatorServer, tmp_path: Path) -> None:
    state = emu.state
    api = OmniTensorAPI(emu.vendor_url(VENDOR), max_model_bytes=1000)
    path, _ = _model_file(tmp_path, 1000)
    assert api.upload_model(path, "ok", framework="onnx", version="1").stream is not None
    path.write_bytes(_payload(1001))
    before = state.snapshot()["requests"]
    with pytest.raises(InputValidationError, match="1001 bytes"):
        api.upload_model(path, "big", framework="onnx", version="1")
    assert state.snapshot()["requests"] == before
    assert OmniTensorAPI().max_model_bytes == 100 * 1024 * 1024


def test_model_upload_of_a_missing_file_is_an_input_error(api: OmniTensorAPI, tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match=r"missing\.bin"):
        api.upload_model(tmp_path / "missing.bin", "m", framework="onnx", version="1")


def test_vendor_size_refusal_maps_to_validation_error(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    state.tables["omnitensor.config"]["max_model_bytes"] = 10_000
    path, _ = _model_file(tmp_path, 3 * UPLOAD_CHUNK_BYTES)
    with pytest.raises(VendorValidationError) as caught:
        client.send(client.api.upload_model(path, "big", framework="onnx", version="1"))
    assert caught.value.http_status == 413 and caught.value.code == "PAYLOAD_TOO_LARGE"
    assert _count(state, "upload_model") == 1


def test_list_models_pages_until_a_short_page(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    models = list(client.iterate(client.api.list_models(limit=1)))
    assert [m.model_id for m in models] == ["sentiment-v1", "llm-small"]
    assert _count(state, "list_models") == 3  # two full pages, then an empty one
    pages = list(client.pages(client.api.list_models(limit=50)))
    assert len(pages) == 1 and pages[0].next_call is None
    with pytest.raises(InputValidationError):
        client.api.list_models(page=0)


# -- inference --------------------------------------------------------------------------------


def test_inference(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    result = client.send(client.api.inference("sentiment-v1", {"text": "great results, love it"}))
    assert result.inference_id.startswith("inf_")
    assert result.output == {"label": "positive", "score": 1.0}
    assert result.cost_omnit == "0.25"
    assert client.send(client.api.balance()).balance == Decimal("1250.25")
    llm = client.send(
        client.api.inference("llm-small", {"prompt": "summarize the plan"}, parameters={"max_tokens": 2})
    )
    assert llm.output == {"text": "Summary: summarize"}


async def test_async_inference(aclient: AsyncClient[OmniTensorAPI]) -> None:
    result = await aclient.send(aclient.api.inference("sentiment-v1", {"text": "terrible and slow"}))
    assert result.output["label"] == "negative"
    assert (await aclient.send(aclient.api.balance())).balance == Decimal("1250.25")


def test_submit_returns_a_terminal_job(client: SyncClient[OmniTensorAPI]) -> None:
    api = client.api
    job = client.send(api.submit("sentiment-v1", {"text": "good"}))
    assert job.state is JobState.SUCCEEDED and job.terminal
    assert job.request_id.startswith("inf_")
    assert job.service == "sentiment-v1"
    assert job.output["output"]["label"] == "positive"
    assert job.output["cost_omnit"] == "0.25"
    assert job.cost_usd is None
    json.dumps(job.model_dump(mode="json"))  # fit for XCom and trigger events
    assert api.status(job.request_id) is None
    assert api.cancel(job.request_id) is None
    assert api.synchronous is True
    with pytest.raises(InputValidationError, match="prediction"):
        api.submit("sentiment-v1", {"text": "x"}, prediction="predict")


async def test_async_submit(aclient: AsyncClient[OmniTensorAPI]) -> None:
    job = await aclient.send(aclient.api.submit("llm-small", {"prompt": "hello there"}))
    assert job.state is JobState.SUCCEEDED
    assert job.output["output"] == {"text": "Summary: hello there"}


def test_unknown_model_is_not_found_and_not_retried(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.send(client.api.inference("nope", {"text": "x"}))
    assert caught.value.code == "MODEL_NOT_FOUND" and caught.value.request_id == "nope"
    assert _count(state, "inference") == 1


def test_inference_is_retried_after_a_429_and_runs_once(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    state.scripted[VENDOR].append({"kind": "429", "retry_after": 0, "path": "/inference"})
    client.send(client.api.inference("sentiment-v1", {"text": "fine"}))
    assert state.faults_injected[f"{VENDOR}.429"] == 1
    assert sum(state.submissions[VENDOR].values()) == 1


def test_inference_is_retried_after_no_capacity(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    state.scripted[VENDOR].append({"kind": "5xx", "status": 503, "retry_after": 0, "path": "/inference"})
    client.send(client.api.inference("sentiment-v1", {"text": "fine"}))
    assert state.faults_injected[f"{VENDOR}.5xx"] == 1
    assert _count(state, "inference") == 1


def test_lost_inference_answer_is_outcome_unknown(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    state.scripted[VENDOR].append({"kind": "drop", "path": "/inference"})
    with pytest.raises(OutcomeUnknownError):
        client.send(client.api.inference("sentiment-v1", {"text": "fine"}))
    assert _count(state, "inference") == 1


def test_malformed_answer_is_unexpected(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    # Garbled answers to a read are read again, until the attempts run out.
    state.scripted[VENDOR].append({"kind": "malformed", "path": "/account/balance"})
    assert client.send(client.api.balance()).balance > 0
    state.scripted[VENDOR].extend([{"kind": "malformed", "path": "/account/balance"}] * 10)
    with pytest.raises(UnexpectedResponseError):
        client.send(client.api.balance())
    state.scripted[VENDOR].clear()


# -- compute and data -------------------------------------------------------------------------


def test_allocate_compute(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    allocation = client.send(client.api.allocate_compute("A100", gpu_count=1, duration_hours=2))
    assert allocation.status == "allocated" and allocation.allocation_id.startswith("alloc_")
    assert allocation.cost_omnit == Decimal("2.40")
    assert client.send(client.api.balance()).balance == Decimal("1248.10")
    with pytest.raises(NotFoundError):
        client.send(client.api.allocate_compute("A100", model_id="nope"))
    with pytest.raises(InputValidationError):
        client.api.allocate_compute("A100", purpose="mining")
    assert sum(state.submissions[VENDOR].values()) == 1


def test_dataset_upload_then_metadata(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    data = _payload(300_000, seed=9)
    path = tmp_path / "train.csv"
    path.write_bytes(data)
    with path.open("rb") as handle:
        uploaded = client.send(client.api.upload_dataset(handle, "train", description="d", format="csv"))
    assert uploaded.size_bytes == len(data)
    meta = client.send(client.api.dataset_metadata(uploaded.dataset_id))
    assert meta.size_bytes == len(data)
    assert meta.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert (meta.name, meta.description, meta.format) == ("train", "d", "csv")
    assert state.read_blob(uploaded.dataset_id) == data


async def test_async_dataset_upload_then_metadata(
    aclient: AsyncClient[OmniTensorAPI], tmp_path: Path
) -> None:
    data = _payload(70_000, seed=11)
    path = tmp_path / "eval.jsonl"
    path.write_bytes(data)
    with path.open("rb") as handle:
        uploaded = await aclient.send(aclient.api.upload_dataset(handle, "eval"))
    meta = await aclient.send(aclient.api.dataset_metadata(uploaded.dataset_id))
    assert (meta.size_bytes, meta.checksum_sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert meta.format is None


def test_dataset_upload_is_resent_whole_after_a_429(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, tmp_path: Path
) -> None:
    data = _payload(50_000, seed=5)
    path = tmp_path / "d.bin"
    path.write_bytes(data)
    state.scripted[VENDOR].append({"kind": "429", "retry_after": 0, "path": "/data/upload"})
    with path.open("rb") as handle:
        uploaded = client.send(client.api.upload_dataset(handle, "d"))
    assert state.read_blob(uploaded.dataset_id) == data


def test_unknown_dataset_is_not_found(client: SyncClient[OmniTensorAPI]) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.send(client.api.dataset_metadata("ds_missing"))
    assert caught.value.code == "DATASET_NOT_FOUND"


# -- account ----------------------------------------------------------------------------------


def test_balance_is_a_decimal(client: SyncClient[OmniTensorAPI]) -> None:
    balance = client.send(client.api.balance())
    assert isinstance(balance.balance, Decimal) and balance.balance == Decimal("1250.50")
    assert balance.currency == "OMNIT"


def test_numeric_amounts_never_pass_through_float(api: OmniTensorAPI) -> None:
    body = b'{"account_id": "a", "balance": 0.1, "currency": "OMNIT"}'
    result = HttpResult(200, httpx.Headers(), body, "https://api.omnitensor.io/account/balance")
    assert api.balance().parse(result).balance == Decimal("0.1")
    answer = b'{"inference_id": "inf_1", "output": {"score": 0.5}, "cost_omnit": 0.1}'
    inference = api.inference("m", {}).parse(HttpResult(200, httpx.Headers(), answer, "u"))
    assert inference.cost_omnit == "0.1" and inference.output == {"score": 0.5}


def test_transfer(client: SyncClient[OmniTensorAPI], state: EmulatorState) -> None:
    call = client.api.transfer("acct_friend", Decimal("10.25"), memo="thanks")
    assert call.json == {"to_account": "acct_friend", "amount": "10.25", "memo": "thanks"}
    done = client.send(call)
    assert done.status == "completed"
    assert (done.amount, done.balance_after) == (Decimal("10.25"), Decimal("1240.25"))
    with pytest.raises(InputValidationError):
        client.api.transfer("acct_friend", 10.25)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError):
        client.api.transfer("acct_friend", "-1")


async def test_async_transfer_with_idempotency_key_replays(
    aclient: AsyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    first = await aclient.send(aclient.api.transfer("acct_friend", "5", idempotency_key="pay-1"))
    again = await aclient.send(aclient.api.transfer("acct_friend", "5", idempotency_key="pay-1"))
    assert again.transaction_id == first.transaction_id
    assert (await aclient.send(aclient.api.balance())).balance == Decimal("1245.50")


def test_insufficient_balance_is_a_quota_error(
    client: SyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    with pytest.raises(QuotaExceededError) as caught:
        client.send(client.api.transfer("acct_friend", "5000.00"))
    assert caught.value.code == "INSUFFICIENT_BALANCE" and caught.value.http_status == 402


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "5xx", "status": 503, "retry_after": 0}, ServerError),
        ({"kind": "5xx", "status": 500}, ServerError),
        ({"kind": "429", "retry_after": 0}, RateLimitError),
    ],
)
def test_transfer_is_never_retried(
    client: SyncClient[OmniTensorAPI], state: EmulatorState, fault: dict[str, Any], error: type[Exception]
) -> None:
    client.send(client.api.balance())
    state.scripted[VENDOR].append({**fault, "path": "/account/transfer"})
    with pytest.raises(error):
        client.send(client.api.transfer("acct_friend", "1.00"))
    assert sum(state.faults_injected.values()) == 1
    assert _count(state, "transfer") == 0  # the only attempt was refused; nothing repeated it
    assert client.send(client.api.balance()).balance == Decimal("1250.50")


async def test_lost_transfer_answer_is_outcome_unknown_after_one_attempt(
    aclient: AsyncClient[OmniTensorAPI], state: EmulatorState
) -> None:
    state.scripted[VENDOR].append({"kind": "drop", "path": "/account/transfer"})
    with pytest.raises(OutcomeUnknownError) as caught:
        await aclient.send(aclient.api.transfer("acct_friend", "1.00", idempotency_key="pay-lost"))
    assert caught.value.request_id == "pay-lost"
    assert _count(state, "transfer") == 1
    assert (await aclient.send(aclient.api.balance())).balance == Decimal("1249.50")  # executed once


# -- error mapping (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "INVALID_REQUEST", VendorValidationError),
        (401, "UNAUTHORIZED", AuthenticationError),
        (402, "INSUFFICIENT_BALANCE", QuotaExceededError),
        (404, "NOT_FOUND", NotFoundError),
        (404, "MODEL_NOT_FOUND", NotFoundError),
        (404, "DATASET_NOT_FOUND", NotFoundError),
        (413, "PAYLOAD_TOO_LARGE", VendorValidationError),
        (429, "RATE_LIMITED", RateLimitError),
        (503, "NO_CAPACITY", ServerError),
    ],
)
def test_error_codes_map_to_the_tree(status: int, code: str, error: type[Exception]) -> None:
    api = OmniTensorAPI()
    body = json.dumps({"error": {"code": code, "message": f"{code} happened", "details": {}}}).encode()
    result = HttpResult(status, httpx.Headers({"retry-after": "2"}), body, "https://api.omnitensor.io/x")
    mapped = api.map_error(Call("op", "GET", "https://api.omnitensor.io/x", lambda r: None), result)
    assert type(mapped) is error
    assert mapped.code == code and mapped.http_status == status and f"{code} happened" in str(mapped)


# -- hook -------------------------------------------------------------------------------------


async def test_hook_keeps_one_token_per_connection(
    emu: EmulatorServer, state: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.hooks.omnitensor import OmniTensorHook

    for name, value in emu.connections().items():
        monkeypatch.setenv(name, value)
    hook = OmniTensorHook(http_settings=SETTINGS)
    try:
        assert (await hook.arun(hook.api.balance())).balance == Decimal("1250.50")
        assert hook.run(hook.api.balance()).balance == Decimal("1250.50")
        shared = await hook.aget_client()
        try:
            assert shared.auth is hook.token_auth is hook.get_conn().auth
            await shared.send(hook.api.balance())
        finally:
            await hook.arelease()
    finally:
        hook.close()
    assert _count(state, "auth_token") == 1
    assert _count(state, "balance") == 3


def test_hook_requires_the_secret(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.hooks.omnitensor import OmniTensorHook

    conn = {"conn_type": "edgeinfer_omnitensor", "host": emu.vendor_url(VENDOR), "password": "some-api-key"}
    monkeypatch.setenv("AIRFLOW_CONN_OMNI_NO_SECRET", json.dumps(conn))
    hook = OmniTensorHook("omni_no_secret")
    ok, message = hook.test_connection()
    assert not ok and "secret" in message and "some-api-key" not in message


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"token": "t1", "expires_in": 120}, 120.0),
        ({"access_token": "t1", "expires_in": 30.5}, 30.5),
        ({"token": "t1"}, 3600.0),  # the documented lifetime when the answer omits it
        ({"token": 5, "expires_in": 10}, UnexpectedResponseError),
        ({"token": "t1", "expires_in": "soon"}, UnexpectedResponseError),
        ([], UnexpectedResponseError),
    ],
)
def test_token_answer_shapes(answer: Any, outcome: float | type[Exception]) -> None:
    now = [1000.0]
    api = OmniTensorAPI(token_clock=lambda: now[0], renew_margin=0)
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            seen.append(json.loads(request.content))
            return httpx.Response(200, json=answer)
        assert request.headers["Authorization"] == "Bearer t1"
        return httpx.Response(200, json={"balance": "1.00"})

    creds = Credentials.of("key-0123456789", "secret-0123456789")
    with SyncClient(api, creds, SETTINGS, transport=httpx.MockTransport(handler)) as client:
        if isinstance(outcome, float):
            client.send(api.balance())
            now[0] += outcome - 0.001
            client.send(api.balance())
            assert len(seen) == 1  # still valid just before expiry
            now[0] += 0.002
            client.send(api.balance())
            assert len(seen) == 2
        else:
            with pytest.raises(outcome):
                client.send(api.balance())
    assert seen[0] == {"api_key": "key-0123456789", "secret": "secret-0123456789"}
