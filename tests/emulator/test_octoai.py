"""The OctoAI emulator over loopback, spoken to with plain httpx: the contract as the vendor shows it."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.octoai import (
    FAILURE_MESSAGE,
    MAX_ASYNC_BODY_BYTES,
    POLICY_MESSAGE,
    TEXT_MODELS,
)
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import EmulatorState, Timing

IMAGE_ENGINES = ("sdxl", "sd", "ssd", "sd3", "controlnet-sdxl", "flux-schnell", "flux-dev")


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def state(emu: EmulatorServer) -> EmulatorState:
    return emu.state


@pytest.fixture
def http(emu: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.state.keys['octoai']}"}
    with httpx.Client(base_url=emu.vendor_url("octoai"), headers=headers, timeout=10) as client:
        yield client


ASYNC = {"X-OctoAI-Async": "1"}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def requests_count(state: EmulatorState) -> dict[str, int]:
    return {k: v for k, v in state.snapshot()["requests"].items() if k.startswith("octoai.")}


def submissions(state: EmulatorState) -> int:
    return sum(state.snapshot()["submissions"]["octoai"].values())


# -- auth and headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}]
)
def test_auth_is_required(emu: EmulatorServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=emu.vendor_url("octoai"), timeout=10) as client:
        response = client.post("/generate/sdxl", json={"prompt": "a cat"}, headers=headers)
    assert response.status_code == 401
    assert "token" in response.json()["message"].lower()
    assert response.headers["X-User-Request-ID"]
    assert submissions(emu.state) == 0


def test_every_answer_carries_a_user_request_id(http: httpx.Client, state: EmulatorState) -> None:
    ok = http.post("/generate/sdxl", json={"prompt": "a cat", "width": 16, "height": 16})
    invalid = http.post("/generate/sdxl", json={})
    state.scripted["octoai"].append({"kind": "429", "retry_after": 0})
    limited = http.get("/v1/requests/nope")
    ids = [r.headers.get("X-User-Request-ID") for r in (ok, invalid, limited)]
    assert [ok.status_code, invalid.status_code, limited.status_code] == [200, 422, 429]
    assert all(ids) and len(set(ids)) == 3


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "type_"),
    [
        ({"steps": 10}, ["body", "prompt"], "missing"),
        ({"prompt": "a cat", "steps": "ten"}, ["body", "steps"], "int_type"),
        ({"prompt": "a cat", "num_images": 0}, ["body", "num_images"], "greater_than"),
        ({"prompt": "a cat", "num_images": 17}, ["body", "num_images"], "less_than_equal"),
        ({"prompt": "a cat", "colour": "red"}, ["body", "colour"], "extra_forbidden"),
        ({"prompt": "a cat", "sampler": "FAST"}, ["body", "sampler"], "enum"),
        ({"prompt": "a cat", "width": "wide"}, ["body", "width"], "int_type"),
        ({"prompt": "a cat", "steps": True}, ["body", "steps"], "int_type"),
        ({"prompt": "a cat", "cfg_scale": 51}, ["body", "cfg_scale"], "less_than_equal"),
    ],
)
def test_schema_violations_are_fastapi_422s(
    http: httpx.Client, state: EmulatorState, body: dict[str, Any], loc: list[str], type_: str
) -> None:
    response = http.post("/generate/sdxl", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {"loc": loc, "type": type_} == {"loc": detail[0]["loc"], "type": detail[0]["type"]}
    assert detail[0]["msg"]
    assert submissions(state) == 0  # a refused body is not a submission


def test_body_that_is_not_json_is_a_422(http: httpx.Client) -> None:
    response = http.post("/generate/sdxl", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_svd_requires_its_image(http: httpx.Client) -> None:
    response = http.post("/generate/svd", json={"prompt": "a cat"})
    assert response.status_code == 422
    locs = [d["loc"] for d in response.json()["detail"]]
    assert ["body", "image"] in locs and ["body", "prompt"] in locs


def test_unknown_engine_is_404(http: httpx.Client) -> None:
    response = http.post("/generate/dalle", json={"prompt": "a cat"})
    assert response.status_code == 404


def test_async_body_over_10_mb_is_413_and_creates_nothing(http: httpx.Client, state: EmulatorState) -> None:
    body = {"audio": "A" * MAX_ASYNC_BODY_BYTES}
    response = http.post("/deployments/echo/predict", json=body, headers=ASYNC)
    assert response.status_code == 413
    assert "10 MB" in response.json()["message"]
    assert submissions(state) == 0
    # The limit is for asynchronous bodies only.
    assert http.post("/deployments/echo/predict", json=body).status_code == 200


def test_policy_violation_is_a_400(http: httpx.Client) -> None:
    for headers in ({}, ASYNC):
        response = http.post("/generate/sdxl", json={"prompt": "this violates-policy"}, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"message": POLICY_MESSAGE}


# -- synchronous inference -------------------------------------------------------------------


@pytest.mark.parametrize("engine", IMAGE_ENGINES)
def test_image_engines_return_decodable_pngs_of_the_requested_size(http: httpx.Client, engine: str) -> None:
    body = {"prompt": "a lighthouse", "width": 40, "height": 24, "num_images": 2, "image_encoding": "jpeg"}
    response = http.post(f"/generate/{engine}", json=body)
    assert response.status_code == 200
    result = response.json()
    assert result["prediction_time_ms"] > 0
    assert len(result["images"]) == 2
    for image in result["images"]:
        assert image["removed_for_safety"] is False
        assert isinstance(image["seed"], int)
        # jpeg was asked for; the emulator documents that it answers PNG bytes anyway.
        assert png_size(base64.b64decode(image["image_b64"])) == (40, 24)


def test_default_size_and_seeds(http: httpx.Client) -> None:
    result = http.post("/generate/sd", json={"prompt": "x", "seed": 7, "num_images": 3}).json()
    assert [i["seed"] for i in result["images"]] == [7, 8, 9]
    assert png_size(base64.b64decode(result["images"][0]["image_b64"])) == (512, 512)


def test_safety_filter_removes_the_first_image(http: httpx.Client) -> None:
    body = {"prompt": "removed-for-safety", "width": 8, "height": 8, "num_images": 2}
    images = http.post("/generate/sdxl", json=body).json()["images"]
    assert images[0]["image_b64"] is None and images[0]["removed_for_safety"] is True
    assert images[1]["image_b64"] and images[1]["removed_for_safety"] is False


def test_svd_returns_videos(http: httpx.Client) -> None:
    image = base64.b64encode(media.png(8, 8)).decode()
    result = http.post("/generate/svd", json={"image": image, "num_videos": 2}).json()
    assert len(result["videos"]) == 2
    assert b"ftyp" in base64.b64decode(result["videos"][0]["video"])[:12]


def test_whisper_deployment_transcribes(http: httpx.Client) -> None:
    audio = media.wav(1.5)
    body = {"audio": base64.b64encode(audio).decode(), "task": "transcribe", "language": "en"}
    response = http.post("/deployments/whisper-demo-kk0powt97tmb/predict", json=body)
    assert response.status_code == 200
    segments = response.json()["response"]["segments"]
    assert segments == [{"text": media.transcript(audio), "start": 0.0, "end": 1.5}]


@pytest.mark.parametrize(("audio", "type_"), [(None, "missing"), (12, "string_type"), ("***", "value_error")])
def test_whisper_rejects_bad_audio(http: httpx.Client, audio: Any, type_: str) -> None:
    body = {"task": "transcribe"} if audio is None else {"audio": audio}
    response = http.post("/deployments/whisper/predict", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "audio"]
    assert response.json()["detail"][0]["type"] == type_


def test_other_deployments_echo(http: httpx.Client) -> None:
    assert http.post("/deployments/my-model/predict", json={"x": 1}).json() == {"response": {"x": 1}}


# -- asynchronous inference ------------------------------------------------------------------


def test_async_lifecycle_follows_the_clock(
    http: httpx.Client, emu: EmulatorServer, state: EmulatorState
) -> None:
    state.timing["octoai"] = Timing(queued=10.0, running=20.0)
    body = {"prompt": "a cat", "width": 8, "height": 8}
    created = http.post("/generate/sdxl", json=body, headers=ASYNC)
    assert created.status_code == 201
    response_id = created.json()["response_id"]
    assert created.json()["poll_url"] == f"{emu.vendor_url('octoai')}/v1/requests/{response_id}"

    seen = [http.get(f"/v1/requests/{response_id}").json()]
    assert http.get(f"/v1/responses/{response_id}").status_code == 409  # not ready is not "expired"
    state.clock.advance(10)
    seen.append(http.get(f"/v1/requests/{response_id}").json())
    state.clock.advance(20)
    seen.append(http.get(f"/v1/requests/{response_id}").json())
    assert seen == [
        {"status": "pending"},
        {"status": "running"},
        {"status": "completed", "response_url": f"{emu.vendor_url('octoai')}/v1/responses/{response_id}"},
    ]
    result = http.get(f"/v1/responses/{response_id}").json()
    assert png_size(base64.b64decode(result["images"][0]["image_b64"])) == (8, 8)
    # The same body, synchronously, answers the same shape with the same pixels.
    assert http.post("/generate/sdxl", json=body).json() == result


def test_async_job_failure(http: httpx.Client, state: EmulatorState) -> None:
    state.faults["octoai"].job_failure_rate = 1.0
    response_id = http.post("/generate/sdxl", json={"prompt": "x"}, headers=ASYNC).json()["response_id"]
    assert http.get(f"/v1/requests/{response_id}").json() == {"status": "failed", "message": FAILURE_MESSAGE}
    assert http.get(f"/v1/responses/{response_id}").status_code == 409


def test_results_expire_after_the_retention(http: httpx.Client, state: EmulatorState) -> None:
    state.octoai_retention_seconds = 60
    body = {"prompt": "x", "width": 8, "height": 8}
    response_id = http.post("/generate/sdxl", json=body, headers=ASYNC).json()["response_id"]
    state.clock.advance(59)
    assert http.get(f"/v1/responses/{response_id}").status_code == 200
    state.clock.advance(1)
    expired = http.get(f"/v1/responses/{response_id}")
    assert expired.status_code == 404
    assert "expired" in expired.json()["message"]
    # The request itself is still known: polling says completed.
    assert http.get(f"/v1/requests/{response_id}").json()["status"] == "completed"


def test_unknown_request_is_404(http: httpx.Client) -> None:
    assert http.get("/v1/requests/nope-00000").status_code == 404
    assert http.get("/v1/responses/nope-00000").status_code == 404


def test_async_whisper_deployment(http: httpx.Client) -> None:
    audio = media.wav(0.5)
    body = {"audio": base64.b64encode(audio).decode(), "task": "transcribe"}
    response_id = http.post("/deployments/whisper/predict", json=body, headers=ASYNC).json()["response_id"]
    result = http.get(f"/v1/responses/{response_id}").json()
    assert result["response"]["segments"][0]["text"] == media.transcript(audio)


# -- counters --------------------------------------------------------------------------------


def test_counters_and_submission_identity(http: httpx.Client, state: EmulatorState) -> None:
    body = {"prompt": "a cat", "width": 8, "height": 8}
    http.post("/generate/sdxl", json=body)
    response_id = http.post("/generate/sdxl", json=body, headers=ASYNC).json()["response_id"]
    http.get(f"/v1/requests/{response_id}")
    http.get(f"/v1/responses/{response_id}")
    http.post("/deployments/echo/predict", json={"a": 1})
    http.post(
        "/text/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    http.get("/text/v1/models")
    assert requests_count(state) == {
        "octoai.generate": 1,
        "octoai.generate_async": 1,
        "octoai.poll": 1,
        "octoai.get_response": 1,
        "octoai.predict": 1,
        "octoai.chat_completions": 1,
        "octoai.list_models": 1,
    }
    # Sync and async submissions of one body share an identity: a duplicate the counters can show.
    duplicates = state.snapshot()["duplicates"]["octoai"]
    assert list(duplicates.values()) == [2]
    assert submissions(state) == 4


# -- text ------------------------------------------------------------------------------------


def test_chat_completions_are_openai_shaped(http: httpx.Client) -> None:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "summarise the call"},
    ]
    response = http.post("/text/v1/chat/completions", json={"model": TEXT_MODELS[0], "messages": messages})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == TEXT_MODELS[0]
    reply = body["choices"][0]["message"]
    assert reply == {"role": "assistant", "content": media.chat_reply(messages)}
    usage = body["usage"]
    assert usage["prompt_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 5


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 422),
        ({"model": "m", "messages": "hi"}, 422),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}, 400),
        ({"model": "m", "messages": [{"role": "user", "content": "violates-policy"}]}, 400),
    ],
)
def test_chat_completions_refusals(http: httpx.Client, body: dict[str, Any], status: int) -> None:
    assert http.post("/text/v1/chat/completions", json=body).status_code == status


def test_models_list(http: httpx.Client) -> None:
    assert [m["id"] for m in http.get("/text/v1/models").json()["data"]] == list(TEXT_MODELS)


# -- faults ----------------------------------------------------------------------------------


def test_scripted_429_and_5xx(http: httpx.Client, state: EmulatorState) -> None:
    state.scripted["octoai"].extend(
        [{"kind": "429", "retry_after": 3}, {"kind": "5xx", "status": 502}, {"kind": "5xx", "retry_after": 0}]
    )
    limited = http.post("/generate/sdxl", json={"prompt": "x"})
    bad_gateway = http.post("/generate/sdxl", json={"prompt": "x"})
    unavailable = http.post("/generate/sdxl", json={"prompt": "x"})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert bad_gateway.status_code == 502 and "Retry-After" not in bad_gateway.headers
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "0")
    assert "message" in limited.json()
    assert submissions(state) == 0  # refused before the handler ran
    assert state.snapshot()["faults_injected"] == {"octoai.429": 1, "octoai.5xx": 2}


def test_drop_runs_the_handler_then_cuts_the_answer(http: httpx.Client, state: EmulatorState) -> None:
    state.scripted["octoai"].append({"kind": "drop", "path": "/generate"})
    with pytest.raises(httpx.TransportError):
        http.post("/generate/sdxl", json={"prompt": "x", "width": 8, "height": 8}, headers=ASYNC)
    assert submissions(state) == 1  # the work exists although the answer was lost


def test_malformed_answer(http: httpx.Client, state: EmulatorState) -> None:
    response_id = http.post("/generate/sdxl", json={"prompt": "x"}, headers=ASYNC).json()["response_id"]
    state.scripted["octoai"].append({"kind": "malformed", "path": "/v1/requests"})
    response = http.get(f"/v1/requests/{response_id}")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_slow_answer(http: httpx.Client, state: EmulatorState) -> None:
    state.scripted["octoai"].append({"kind": "slow", "seconds": 0.05})
    response = http.get("/text/v1/models")
    assert response.status_code == 200
    assert state.snapshot()["faults_injected"] == {"octoai.slow": 1}
