"""The OmniTensor emulator spoken to with plain httpx: the contract as the wire sees it."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.emulator.omnitensor import FileFieldSplitter
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import EmulatorState

VENDOR = "omnitensor"


@pytest.fixture
def state(edgeinfer_emulator: EmulatorServer) -> Iterator[EmulatorState]:
    state = edgeinfer_emulator.state
    keys, secret, ttl = dict(state.keys), state.omnitensor_secret, state.omnitensor_token_ttl
    yield state
    state.keys.update(keys)
    state.omnitensor_secret, state.omnitensor_token_ttl = secret, ttl


@pytest.fixture
def http(edgeinfer_emulator: EmulatorServer, state: EmulatorState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edgeinfer_emulator.vendor_url(VENDOR), timeout=10) as client:
        yield client


def _token(http: httpx.Client, state: EmulatorState) -> str:
    answer = http.post("/auth/token", json={"api_key": state.keys[VENDOR], "secret": state.omnitensor_secret})
    assert answer.status_code == 200
    return str(answer.json()["token"])


@pytest.fixture
def authed(http: httpx.Client, state: EmulatorState) -> httpx.Client:
    http.headers["Authorization"] = f"Bearer {_token(http, state)}"
    return http


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return response.status_code, body["error"]["code"]


def _model_body(data: bytes, **fields: Any) -> dict[str, Any]:
    body = {"model_name": "m", "description": "", "config": {"framework": "onnx", "version": "1"}}
    body.update(fields)
    body["file"] = base64.b64encode(data).decode()
    return body


# -- auth -------------------------------------------------------------------------------------


def test_token_exchange(http: httpx.Client, state: EmulatorState) -> None:
    state.omnitensor_token_ttl = 90.0
    answer = http.post("/auth/token", json={"api_key": state.keys[VENDOR], "secret": state.omnitensor_secret})
    assert answer.json()["expires_in"] == 90 and answer.json()["token"].startswith("otk_")
    assert state.requests[f"{VENDOR}.auth_token"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"api_key": "wrong", "secret": "emulator-omnitensor-secret"},
        {"api_key": "emulator-omnitensor-key", "secret": "wrong"},
    ],
)
def test_token_exchange_refuses_a_wrong_key_or_secret(http: httpx.Client, body: dict[str, str]) -> None:
    assert _error(http.post("/auth/token", json=body)) == (401, "UNAUTHORIZED")


def test_token_exchange_needs_both_fields(http: httpx.Client) -> None:
    assert _error(http.post("/auth/token", json={"api_key": "x"})) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ai/models"),
        ("POST", "/ai/models/sentiment-v1/inference"),
        ("POST", "/compute/allocate"),
        ("GET", "/data/ds_x/metadata"),
        ("GET", "/account/balance"),
        ("POST", "/account/transfer"),
        ("POST", "/ai/models/upload"),
        ("POST", "/data/upload"),
    ],
)
def test_every_endpoint_needs_a_token(http: httpx.Client, method: str, path: str) -> None:
    assert _error(http.request(method, path, json={})) == (401, "UNAUTHORIZED")
    http.headers["Authorization"] = "Bearer otk_made_up"
    assert _error(http.request(method, path, json={})) == (401, "UNAUTHORIZED")


def test_tokens_expire_on_the_emulator_clock(authed: httpx.Client, state: EmulatorState) -> None:
    assert authed.get("/account/balance").status_code == 200
    state.clock.advance(state.omnitensor_token_ttl)
    assert _error(authed.get("/account/balance")) == (401, "UNAUTHORIZED")


# -- models -----------------------------------------------------------------------------------


def test_model_upload_decodes_the_file(authed: httpx.Client, state: EmulatorState) -> None:
    data = random.Random(1).randbytes(100_003)
    answer = authed.post("/ai/models/upload", json=_model_body(data, model_name="mine"))
    assert answer.status_code == 200
    model_id = answer.json()["model_id"]
    assert answer.json()["status"] == "Model successfully uploaded"
    assert state.read_blob(model_id) == data
    listed = {m["model_id"]: m for m in authed.get("/ai/models").json()}
    assert listed[model_id] == {
        "model_id": model_id,
        "model_name": "mine",
        "framework": "onnx",
        "version": "1",
        "created_at": listed[model_id]["created_at"],
    }
    assert sum(state.submissions[VENDOR].values()) == 1


def test_model_upload_accepts_any_key_order_and_escaped_slashes(
    authed: httpx.Client, state: EmulatorState
) -> None:
    data = bytes(range(256)) * 40  # base64 of every byte value contains '/' and '+'
    encoded = base64.b64encode(data).decode().replace("/", "\\/")
    rest = '"model_name": "first", "config": {"framework": "tf", "version": "2"}}'
    raw = '{"file": "' + encoded + '", ' + rest

    def chunks() -> Iterator[bytes]:
        body = raw.encode()
        for i in range(0, len(body), 7):  # tiny chunks: escapes and groups straddle boundaries
            yield body[i : i + 7]

    answer = authed.post("/ai/models/upload", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert state.read_blob(answer.json()["model_id"]) == data


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"model_name": "m", "config": {"framework": "a", "version": "1"}}', "file"),
        (b'{"model_name": "m", "config": {"framework": "a", "version": "1"}, "file": "@@@@"}', "base64"),
        (
            b'{"model_name": "m", "config": {"framework": "a", "version": "1"}, "file": "QUJ"}',
            "multiple of 4",
        ),
        (b'{"config": {"framework": "a", "version": "1"}, "file": "QUJD"}', "model_name"),
        (b'{"model_name": "m", "file": "QUJD"}', "config"),
        (b'{"model_name": "m", "file": "QUJD"', "ended"),
    ],
)
def test_model_upload_rejects_bad_bodies(authed: httpx.Client, body: bytes, fragment: str) -> None:
    answer = authed.post("/ai/models/upload", content=body)
    assert _error(answer) == (400, "INVALID_REQUEST")
    assert fragment in answer.json()["error"]["message"]


def test_model_upload_over_the_limit_is_413(authed: httpx.Client, state: EmulatorState) -> None:
    state.tables["omnitensor.config"]["max_model_bytes"] = 1000
    data = random.Random(2).randbytes(1001)
    assert _error(authed.post("/ai/models/upload", json=_model_body(data))) == (413, "PAYLOAD_TOO_LARGE")

    def streamed() -> Iterator[bytes]:  # no Content-Length: refused while decoding
        yield json.dumps(_model_body(data)).encode()

    assert _error(authed.post("/ai/models/upload", content=streamed())) == (413, "PAYLOAD_TOO_LARGE")
    assert sum(state.submissions[VENDOR].values()) == 0


def _split(body: bytes, step: int) -> tuple[dict[str, Any], bytes]:
    received = bytearray()
    splitter = FileFieldSplitter(received.extend)
    for i in range(0, len(body), step):
        splitter.feed(body[i : i + step])
    return splitter.finish(), bytes(received)


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_splitter_only_takes_the_top_level_file(step: int) -> None:
    data = b"model weights \x00\xff"
    body = json.dumps(
        {
            "description": 'says "file": "Zm9v" inside',
            "config": {"file": "nested, not the model", "framework": "x"},
            "file": base64.b64encode(data).decode(),
            "model_name": "after",
        }
    ).encode()
    fields, received = _split(body, step)
    assert received == data
    assert fields["file"] is None and fields["model_name"] == "after"
    assert fields["config"]["file"] == "nested, not the model"
    assert fields["description"] == 'says "file": "Zm9v" inside'


def test_splitter_rejects_data_after_padding() -> None:
    splitter = FileFieldSplitter(lambda block: None)
    with pytest.raises(ValueError, match="not base64"):
        splitter.feed(b'{"file": "QQ==QUJD"}')
    chunked = FileFieldSplitter(lambda block: None)
    chunked.feed(b'{"file": "QQ==')  # each chunk is valid alone: only the order gives it away
    with pytest.raises(ValueError, match="padding"):
        chunked.feed(b'QUJD"}')


def test_list_models_pages(authed: httpx.Client) -> None:
    first = authed.get("/ai/models", params={"page": 1, "limit": 1}).json()
    second = authed.get("/ai/models", params={"page": 2, "limit": 1}).json()
    third = authed.get("/ai/models", params={"page": 3, "limit": 1}).json()
    assert [m["model_id"] for m in first + second] == ["sentiment-v1", "llm-small"]
    assert third == []
    assert _error(authed.get("/ai/models", params={"page": 0})) == (400, "INVALID_REQUEST")


# -- inference --------------------------------------------------------------------------------


def test_inference_is_deterministic_and_billed(authed: httpx.Client, state: EmulatorState) -> None:
    def run(text: str) -> dict[str, Any]:
        answer = authed.post("/ai/models/sentiment-v1/inference", json={"input": {"text": text}})
        assert answer.status_code == 200
        return dict(answer.json())

    one, two = run("a great day"), run("a great day")
    assert one["output"] == two["output"] == {"label": "positive", "score": 1.0}
    assert one["latency_ms"] == two["latency_ms"]
    assert one["inference_id"] != two["inference_id"]
    assert one["cost_omnit"] == "0.25"
    assert run("bad and slow")["output"]["label"] == "negative"
    assert run("a table")["output"] == {"label": "neutral", "score": 0.5}
    assert authed.get("/account/balance").json()["balance"] == "1249.50"
    assert (
        state.submissions[VENDOR][state.identity("inference", "sentiment-v1", {"text": "a great day"}, {})]
        == 2
    )


def test_llm_and_uploaded_models_answer(authed: httpx.Client) -> None:
    reply = authed.post(
        "/ai/models/llm-small/inference",
        json={"input": {"messages": [{"role": "user", "content": "plan the launch"}]}},
    ).json()
    assert reply["output"] == {"text": "Summary: plan the launch"}
    model_id = authed.post("/ai/models/upload", json=_model_body(b"w")).json()["model_id"]
    first = authed.post(f"/ai/models/{model_id}/inference", json={"input": {"x": 1}}).json()
    again = authed.post(f"/ai/models/{model_id}/inference", json={"input": {"x": 1}}).json()
    other = authed.post(f"/ai/models/{model_id}/inference", json={"input": {"x": 2}}).json()
    assert first["output"] == again["output"] != other["output"]
    assert first["cost_omnit"] == "0.10"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/ai/models/nope/inference", {"input": {}}, (404, "MODEL_NOT_FOUND")),
        ("/ai/models/sentiment-v1/inference", {"input": "text"}, (400, "INVALID_REQUEST")),
        ("/ai/models/sentiment-v1/inference", {"input": {"prompt": "x"}}, (400, "INVALID_REQUEST")),
        ("/ai/models/llm-small/inference", {"input": {}}, (400, "INVALID_REQUEST")),
    ],
)
def test_inference_errors(
    authed: httpx.Client, path: str, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    assert _error(authed.post(path, json=body)) == expected


def test_injected_no_capacity_has_the_vendor_shape(authed: httpx.Client, state: EmulatorState) -> None:
    state.scripted[VENDOR].append({"kind": "5xx", "status": 503, "retry_after": 0})
    answer = authed.get("/account/balance")
    assert _error(answer) == (503, "NO_CAPACITY")
    assert answer.headers["Retry-After"] == "0"


# -- compute, data, account -------------------------------------------------------------------


def test_allocate_compute(authed: httpx.Client, state: EmulatorState) -> None:
    answer = authed.post(
        "/compute/allocate",
        json={
            "gpu_type": "H100",
            "gpu_count": 2,
            "duration_hours": 1.5,
            "purpose": "training",
            "model_id": "llm-small",
        },
    )
    body = answer.json()
    assert body["status"] == "allocated" and body["cost_omnit"] == "7.50"
    assert (body["gpu_type"], body["gpu_count"]) == ("H100", 2) and body["expires_at"].endswith("Z")
    assert authed.get("/account/balance").json()["balance"] == "1243.00"
    assert _error(authed.post("/compute/allocate", json={"gpu_type": "TPU", "duration_hours": 1})) == (
        400,
        "INVALID_REQUEST",
    )
    assert _error(authed.post("/compute/allocate", json={"gpu_type": "A100", "duration_hours": 0})) == (
        400,
        "INVALID_REQUEST",
    )
    assert _error(
        authed.post("/compute/allocate", json={"gpu_type": "H100", "gpu_count": 1000, "duration_hours": 1})
    ) == (402, "INSUFFICIENT_BALANCE")


def test_dataset_upload_and_metadata(authed: httpx.Client, state: EmulatorState) -> None:
    data = random.Random(4).randbytes(2_500_000)  # larger than the multipart parser's memory spool
    answer = authed.post(
        "/data/upload", files={"file": ("d.parquet", data)}, data={"name": "d", "format": "parquet"}
    )
    assert answer.status_code == 200, answer.text
    uploaded = answer.json()
    checksum = hashlib.sha256(data).hexdigest()
    assert uploaded["status"] == "uploaded"
    assert (uploaded["size_bytes"], uploaded["checksum_sha256"]) == (len(data), checksum)
    meta = authed.get(f"/data/{uploaded['dataset_id']}/metadata").json()
    assert {k: meta[k] for k in ("name", "description", "format", "size_bytes", "checksum_sha256")} == {
        "name": "d",
        "description": None,
        "format": "parquet",
        "size_bytes": len(data),
        "checksum_sha256": checksum,
    }
    assert state.read_blob(uploaded["dataset_id"]) == data
    assert _error(authed.get("/data/ds_nope/metadata")) == (404, "DATASET_NOT_FOUND")
    assert _error(authed.post("/data/upload", data={"name": "no file"})) == (400, "INVALID_REQUEST")
    assert _error(authed.post("/data/upload", files={"file": ("x", b"1")})) == (400, "INVALID_REQUEST")


def test_balance(authed: httpx.Client) -> None:
    assert authed.get("/account/balance").json() == {
        "account_id": "acct_emulator",
        "balance": "1250.50",
        "currency": "OMNIT",
    }


def test_transfer_replays_by_idempotency_key(authed: httpx.Client, state: EmulatorState) -> None:
    body = {"to_account": "acct_b", "amount": "100.25", "idempotency_key": "k1"}
    first = authed.post("/account/transfer", json=body).json()
    again = authed.post("/account/transfer", json=body).json()
    assert first == again
    assert (
        first["status"] == "completed" and first["amount"] == "100.25" and first["balance_after"] == "1150.25"
    )
    assert authed.get("/account/balance").json()["balance"] == "1150.25"
    without_key = {"to_account": "acct_b", "amount": "0.25"}
    authed.post("/account/transfer", json=without_key)
    authed.post("/account/transfer", json=without_key)
    assert authed.get("/account/balance").json()["balance"] == "1149.75"
    duplicates = state.snapshot()["duplicates"][VENDOR]
    assert list(duplicates.values()) == [2]  # the keyless pair is flagged; the keyed replay is not


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"to_account": "acct_b", "amount": "2000.00"}, (402, "INSUFFICIENT_BALANCE")),
        ({"to_account": "acct_b", "amount": 1.5}, (400, "INVALID_REQUEST")),
        ({"to_account": "acct_b", "amount": "0.001"}, (400, "INVALID_REQUEST")),
        ({"to_account": "acct_b", "amount": "-1"}, (400, "INVALID_REQUEST")),
        ({"to_account": "acct_b", "amount": "ten"}, (400, "INVALID_REQUEST")),
        ({"to_account": "acct_emulator", "amount": "1"}, (400, "INVALID_REQUEST")),
    ],
)
def test_transfer_errors(authed: httpx.Client, body: dict[str, Any], expected: tuple[int, str]) -> None:
    assert _error(authed.post("/account/transfer", json=body)) == expected
    assert authed.get("/account/balance").json()["balance"] == "1250.50"


def test_operations_are_counted(authed: httpx.Client, state: EmulatorState) -> None:
    calls: list[Callable[[], httpx.Response]] = [
        lambda: authed.get("/ai/models"),
        lambda: authed.get("/account/balance"),
        lambda: authed.get("/data/x/metadata"),
    ]
    for call in calls:
        call()
    assert {k: v for k, v in state.requests.items() if k.startswith(VENDOR)} == {
        "omnitensor.auth_token": 1,
        "omnitensor.list_models": 1,
        "omnitensor.balance": 1,
        "omnitensor.dataset_metadata": 1,
    }
