"""Strict mode: what the contract does not allow is refused, in each vendor's own error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.emulator.__main__ import build_state, parse_args
from airflow_provider_edgeinfer.emulator.strict import INTEGER, STRING, array, obj, problems

CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    return True


@pytest.fixture
def emu(edgeinfer_emulator: Any) -> Any:
    return edgeinfer_emulator


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _post(emu: Any, http: httpx.Client, vendor: str, path: str, body: Any, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {emu.state.keys[vendor]}", **kw.pop("headers", {})}
    return http.post(f"{emu.vendor_url(vendor)}{path}", json=body, headers=headers, **kw)


def _violations(emu: Any, vendor: str) -> int:
    return int(emu.state.snapshot()["requests"].get(f"{vendor}.strict_violation", 0))


def test_problems_name_each_departure() -> None:
    shape = obj(["a"], a=STRING, b=array(INTEGER), c=obj(d=INTEGER))
    assert problems({"a": "x", "b": [1, 2], "c": {"d": 3}}, shape) == []
    assert problems({"b": [1, "2", True], "c": {"e": 1}, "z": None}, shape) == [
        (["body", "a"], "is required"),
        (["body", "b", 1], "must be integer, got string"),
        (["body", "b", 2], "must be integer, got boolean"),
        (["body", "c", "e"], "is not a field the contract allows"),
        (["body", "z"], "is not a field the contract allows"),
    ]


# -- Theta -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/infer_request/whisper", {"input": {"audio_filename": "upl_x"}, "priority": 1}, "body.priority"),
        ("/infer_request/whisper", {"input": {"audio_filename": "upl_x"}, "wait": "5"}, "body.wait must be"),
        ("/infer_request/whisper", {"input": {"audio_filename": "upl_x", "lang": "en"}}, "body.input.lang"),
        ("/infer_request/flux", {"input": {"prompt": "a cat", "width": "512"}}, "body.input.width must be"),
        ("/infer_request/whisper?debug=1", {"input": {"audio_filename": "upl_x"}}, "query.debug"),
        ("/infer_request/whisper/input_presigned_urls", {"fields": ["audio_filename"]}, "body.fields"),
    ],
)
def test_theta_refuses_what_the_contract_does_not_list(
    emu: Any, http: httpx.Client, path: str, body: Any, named: str
) -> None:
    response = _post(emu, http, "theta", path, body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "error" and named in answer["message"]
    assert _violations(emu, "theta") == 1
    assert not emu.state.snapshot()["submissions"]["theta"], "a refused request creates nothing"


def test_theta_llm_without_stream_false_is_a_violation_in_strict_mode_only(
    emu: Any, http: httpx.Client
) -> None:
    chat: dict[str, Any] = {"messages": CHAT}
    body = {"input": chat, "wait": 0}
    refused = _post(emu, http, "theta", "/infer_request/llama_3_1_70b", body)
    assert refused.status_code == 400 and "body.input.stream" in refused.json()["message"]
    emu.state.strict = False
    streamed = _post(emu, http, "theta", "/infer_request/llama_3_1_70b", body)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    emu.state.strict = True
    asked = _post(
        emu,
        http,
        "theta",
        "/infer_request/llama_3_1_70b",
        {**body, "input": {**chat, "stream": True}},
    )
    assert asked.headers["content-type"].startswith("text/event-stream"), "a client that asks may read SSE"


def test_not_strict_ignores_unknown_keys(emu: Any, http: httpx.Client) -> None:
    emu.state.strict = False
    body = {"input": {"audio_filename": "upl_x"}, "priority": 1}
    assert _post(emu, http, "theta", "/infer_request/whisper?debug=1", body).status_code == 200
    assert _violations(emu, "theta") == 0


# -- OctoAI ------------------------------------------------------------------------------------


def test_octoai_answers_422_details(emu: Any, http: httpx.Client) -> None:
    response = _post(
        emu, http, "octoai", "/text/v1/chat/completions?x=1", {"model": "m", "messages": CHAT, "foo": 1}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [["query", "x"], ["body", "foo"]]
    assert all(set(d) == {"loc", "msg", "type"} for d in detail)
    whisper = _post(emu, http, "octoai", "/deployments/whisper/predict", {"audio": "UklGRg==", "prompt": "x"})
    assert whisper.status_code == 422 and whisper.json()["detail"][0]["loc"] == ["body", "prompt"]
    poll = http.get(
        f"{emu.vendor_url('octoai')}/v1/requests/abc?verbose=1",
        headers={"Authorization": f"Bearer {emu.state.keys['octoai']}"},
    )
    assert poll.status_code == 422 and poll.json()["detail"][0]["loc"] == ["query", "verbose"]


# -- infrai ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": CHAT, "temprature": 0.2}, "core"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x", "dimensions": "8"}, "core"),
        (
            "/v1/ai/batch/submit",
            {"requests": [{"capability": "embeddings", "body": {}, "id": "a"}]},
            "native",
        ),
        ("/v1/ai/batch/set_retention/batch_x", {"retention_days": 1, "batch_id": "batch_x"}, "native"),
        ("/v1/ai/rerank", {"query": "q", "documents": [{"text": "a"}]}, "native"),
        ("/v1/ai/cost/estimate?model=x", {"messages": "hi"}, "native"),
    ],
)
def test_infrai_refuses_in_the_surface_error_shape(
    emu: Any, http: httpx.Client, path: str, body: Any, shape: str
) -> None:
    response = _post(emu, http, "infrai", path, body)
    assert response.status_code == 400
    answer = response.json()
    if shape == "core":
        assert answer["error"]["type"] == "invalid_request_error"
    else:
        assert answer["ok"] is False and answer["error"]["code"] == "INVALID_REQUEST"
    assert "strict contract check" in answer["error"]["message"]


def test_infrai_transcription_form_fields(emu: Any, http: httpx.Client) -> None:
    response = http.post(
        f"{emu.vendor_url('infrai')}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {emu.state.keys['infrai']}"},
        files={"file": ("a.wav", b"RIFF0000WAVE", "audio/wav")},
        data={"model": "whisper-1", "speaker": "a"},
    )
    assert response.status_code == 400 and "form.speaker" in response.json()["error"]["message"]


# -- OmniTensor ----------------------------------------------------------------------------------


def test_omnitensor_refuses_in_its_error_shape(emu: Any, http: httpx.Client) -> None:
    base = emu.vendor_url("omnitensor")
    token_body = {"api_key": emu.state.keys["omnitensor"], "secret": emu.state.omnitensor_secret}
    refused = http.post(f"{base}/auth/token", json={**token_body, "scope": "all"})
    assert refused.status_code == 400
    assert (
        refused.json()["error"]["code"] == "INVALID_REQUEST"
        and "body.scope" in refused.json()["error"]["message"]
    )
    token = http.post(f"{base}/auth/token", json=token_body).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    for method, path, body, named in (
        (
            "POST",
            "/ai/models/sentiment-v1/inference",
            {"input": {"text": "hi"}, "stream": True},
            "body.stream",
        ),
        ("POST", "/account/transfer", {"to_account": "acct_x", "amount": 10}, "body.amount must be"),
        (
            "POST",
            "/compute/allocate",
            {"gpu_type": "A100", "gpu_count": 1, "duration_hours": 1},
            "body.purpose",
        ),
        ("GET", "/ai/models?page=1&limit=5&sort=name", None, "query.sort"),
    ):
        response = http.request(method, f"{base}{path}", json=body, headers=auth)
        assert response.status_code == 400, (path, response.text)
        assert named in response.json()["error"]["message"], path
    assert not emu.state.snapshot()["submissions"]["omnitensor"]


# -- switches ------------------------------------------------------------------------------------


def test_cli_strict_flag() -> None:
    assert build_state(parse_args(["--strict"])).strict is True
    assert build_state(parse_args([])).strict is False
