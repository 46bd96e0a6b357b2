"""The infrai emulator over plain HTTP: OpenAI-faithful core shapes, native envelopes, batches, faults.

Core requests are made the way the official ``openai`` SDK makes them (``base_url=BASE/infrai/v1``,
relative paths, its default ``encoding_format=base64`` for embeddings), so the shapes checked here
are the ones the SDK parses.
"""

from __future__ import annotations

import base64
import csv
import io
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.emulator import infrai, infrai_common, media
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import Timing

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello from the test suite"}]}


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def openai(emu: EmulatorServer) -> Iterator[httpx.Client]:
    """What the openai SDK would use: base URL ending in /v1, bearer key."""
    headers = {"Authorization": f"Bearer {emu.state.keys['infrai']}"}
    with httpx.Client(base_url=f"{emu.vendor_url('infrai')}/v1/", headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def native(emu: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.state.keys['infrai']}"}
    with httpx.Client(base_url=f"{emu.vendor_url('infrai')}/v1/ai/", headers=headers, timeout=10) as client:
        yield client


def chat_item(i: int) -> dict[str, Any]:
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": f"row {i}"}]}
    return {"capability": "chat.completions", "body": body, "custom_id": f"r{i}"}


def data(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True and body["error"] is None
    assert set(body["metadata"]) == {"cost_usd", "latency_ms", "vendor", "cache_hit", "request_id"}
    assert response.headers["x-request-id"] == body["metadata"]["request_id"]
    return body["data"]


def native_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert body["ok"] is False and body["data"] is None
    assert body["error"]["code"] == code
    return dict(body["error"])


def openai_error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    return dict(body["error"])


def submissions(emu: EmulatorServer) -> dict[str, int]:
    return dict(emu.state.snapshot()["submissions"]["infrai"])


# -- auth and routing -----------------------------------------------------------------------------


def test_missing_or_wrong_key(emu: EmulatorServer) -> None:
    base = emu.vendor_url("infrai")
    with httpx.Client(timeout=10) as client:
        core = client.get(f"{base}/v1/models", headers={"Authorization": "Bearer nope"})
        error = openai_error(core, 401, "authentication_error")
        assert error["code"] == "UNAUTHORIZED"
        nat = client.get(f"{base}/v1/ai/batch/list")
        assert native_error(nat, 401, "UNAUTHORIZED")["retryable"] is False
    assert emu.state.snapshot()["requests"] == {"infrai.models.list": 1, "infrai.batch.list": 1}


def test_unknown_paths_answer_in_each_surface_shape(openai: httpx.Client, native: httpx.Client) -> None:
    openai_error(openai.post("videos/generations", json={}), 404, "not_found_error")
    native_error(native.post("video/render", json={}), 404, "NOT_FOUND")


def test_injected_faults_use_each_surface_shape(
    emu: EmulatorServer, openai: httpx.Client, native: httpx.Client
) -> None:
    emu.state.scripted["infrai"].append({"kind": "429", "retry_after": 7, "path": "/chat/completions"})
    limited = openai.post("chat/completions", json=CHAT)
    assert openai_error(limited, 429, "rate_limit_error")["code"] == "RATE_LIMITED"
    assert limited.headers["retry-after"] == "7"
    emu.state.scripted["infrai"].append({"kind": "5xx", "status": 502, "path": "/batch/list"})
    upstream = native.get("batch/list")
    assert native_error(upstream, 502, "UPSTREAM_ERROR")["retryable"] is True
    assert submissions(emu) == {}


# -- core: OpenAI shapes --------------------------------------------------------------------------


def test_chat_completion_is_openai_shaped(openai: httpx.Client) -> None:
    response = openai.post("chat/completions", json={**CHAT, "n": 2})
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "gpt-4o-mini"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Summary: hello from the test suite",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.headers["x-request-id"] == body["id"]


def test_chat_completion_length_limit_and_multimodal_content(openai: httpx.Client) -> None:
    parts = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    body = openai.post(
        "chat/completions",
        json={"model": "gpt-4o", "max_tokens": 1, "messages": [{"role": "user", "content": parts}]},
    ).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "Summ"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o-mini"},
        {"model": "gpt-4o-mini", "messages": []},
        {"model": "gpt-4o-mini", "messages": ["hi"]},
        {"messages": [{"role": "user", "content": "hi"}]},
        {**CHAT, "stream": True},
        {**CHAT, "n": 0},
    ],
)
def test_chat_completion_rejects_bad_bodies(openai: httpx.Client, emu: EmulatorServer, body: Any) -> None:
    assert openai_error(openai.post("chat/completions", json=body), 400, "invalid_request_error")["code"] == (
        "INVALID_REQUEST"
    )
    assert submissions(emu) == {}


def test_invalid_json_is_refused(openai: httpx.Client) -> None:
    response = openai.post(
        "chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    openai_error(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("nomic-embed-text", 768)],
)
def test_embeddings_in_the_sdk_default_base64_form(openai: httpx.Client, model: str, dimensions: int) -> None:
    body = openai.post(
        "embeddings", json={"model": model, "input": "alpha", "encoding_format": "base64"}
    ).json()
    assert body["object"] == "list" and body["model"] == model
    raw = base64.b64decode(body["data"][0]["embedding"])
    vector = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(vector) == dimensions
    assert list(vector) == pytest.approx(media.embedding("alpha", dimensions), abs=1e-6)


def test_embeddings_inputs_and_dimensions(openai: httpx.Client) -> None:
    body = openai.post(
        "embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b", "c"], "dimensions": 256}
    ).json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(len(d["embedding"]) == 256 and d["object"] == "embedding" for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    tokens = openai.post("embeddings", json={"model": "m", "input": [[1, 2], [3]]}).json()
    assert len(tokens["data"]) == 2
    too_big = openai.post(
        "embeddings", json={"model": "text-embedding-3-small", "input": "a", "dimensions": 4096}
    )
    openai_error(too_big, 400, "invalid_request_error")
    openai_error(openai.post("embeddings", json={"model": "m", "input": [""]}), 400, "invalid_request_error")


def test_images_b64_by_default_and_url_on_request(openai: httpx.Client, emu: EmulatorServer) -> None:
    inline = openai.post("images/generations", json={"prompt": "a fox", "size": "32x16"}).json()
    assert set(inline) == {"created", "data"}
    png = base64.b64decode(inline["data"][0]["b64_json"])
    assert infrai_common._png_size(png) == (32, 16)
    linked = openai.post(
        "images/generations", json={"prompt": "a fox", "size": "4096x4096", "response_format": "url"}
    ).json()
    url = linked["data"][0]["url"]
    assert url.startswith(emu.url + "/_media/")
    assert infrai_common._png_size(httpx.get(url).content) == (infrai.MAX_IMAGE_SIDE, infrai.MAX_IMAGE_SIDE)
    bad = openai.post("images/generations", json={"prompt": "a fox", "response_format": "gif"})
    openai_error(bad, 400, "invalid_request_error")


@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json"])
def test_transcription_multipart(openai: httpx.Client, response_format: str) -> None:
    audio = media.wav(0.25)
    response = openai.post(
        "audio/transcriptions",
        files={"file": ("speech.wav", audio, "audio/wav")},
        data={"model": "whisper-1", "language": "de", "response_format": response_format},
    )
    assert response.status_code == 200, response.text
    expected = media.transcript(audio, "de")
    if response_format == "text":
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == expected
    else:
        assert response.json()["text"] == expected
    if response_format == "verbose_json":
        assert response.json()["duration"] == pytest.approx(len(audio) / 32_000)


def test_transcription_refuses_bad_uploads(openai: httpx.Client) -> None:
    empty = openai.post("audio/transcriptions", files={"file": ("a.wav", b"")}, data={"model": "whisper-1"})
    openai_error(empty, 400, "invalid_request_error")
    no_model = openai.post("audio/transcriptions", files={"file": ("a.wav", b"RIFF")})
    openai_error(no_model, 400, "invalid_request_error")
    no_file = openai.post("audio/transcriptions", data={"model": "whisper-1"})
    openai_error(no_file, 400, "invalid_request_error")


def test_speech_is_binary_audio(openai: httpx.Client) -> None:
    wav = openai.post("audio/speech", json={"model": "tts-1", "input": "hello", "voice": "echo"})
    assert wav.headers["content-type"] == "audio/wav" and wav.content.startswith(b"RIFF")
    pcm = openai.post(
        "audio/speech", json={"model": "tts-1", "input": "hello", "voice": "echo", "response_format": "pcm"}
    )
    assert pcm.headers["content-type"] == "audio/pcm" and pcm.content == wav.content[44:]
    bad = openai.post("audio/speech", json={"model": "tts-1", "input": "hello", "voice": "robot"})
    assert "robot" in openai_error(bad, 400, "invalid_request_error")["message"]


def test_models_list_is_openai_shaped(openai: httpx.Client) -> None:
    body = openai.get("models").json()
    assert body["object"] == "list"
    assert all(
        set(m) == {"id", "object", "created", "owned_by"} and m["object"] == "model" for m in body["data"]
    )


# -- idempotency and submissions ------------------------------------------------------------------


def test_header_key_replays_the_first_answer(openai: httpx.Client, emu: EmulatorServer) -> None:
    first = openai.post("chat/completions", json=CHAT, headers={"Idempotency-Key": "k1"})
    again = openai.post("chat/completions", json=CHAT, headers={"Idempotency-Key": "k1"})
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] == first.headers["x-request-id"]
    assert submissions(emu) == {"k1": 1}
    assert emu.state.snapshot()["requests"]["infrai.chat.completions"] == 2


def test_body_key_replays_a_batch_and_creates_nothing(native: httpx.Client, emu: EmulatorServer) -> None:
    body = {"requests": [chat_item(0)], "idempotency_key": "batch-key"}
    first = data(native.post("batch/submit", json=body))
    again = data(native.post("batch/submit", json=body))
    assert again["batch_id"] == first["batch_id"]
    assert len(emu.state.tables[infrai.BATCHES_TABLE]) == 1
    assert submissions(emu) == {"batch-key": 1}
    # The same key through the header is the same request.
    header = native.post(
        "batch/submit", json={"requests": [chat_item(0)]}, headers={"Idempotency-Key": "batch-key"}
    )
    assert data(header)["batch_id"] == first["batch_id"]


def test_key_reuse_with_other_content_is_a_conflict(native: httpx.Client, emu: EmulatorServer) -> None:
    data(native.post("batch/submit", json={"requests": [chat_item(0)], "idempotency_key": "k"}))
    clash = native.post("batch/submit", json={"requests": [chat_item(1)], "idempotency_key": "k"})
    native_error(clash, 409, "CONFLICT")
    mismatch = native.post(
        "batch/submit",
        json={"requests": [chat_item(0)], "idempotency_key": "k"},
        headers={"Idempotency-Key": "other"},
    )
    native_error(mismatch, 400, "INVALID_REQUEST")
    assert submissions(emu) == {"k": 1}


def test_blind_duplicates_without_a_key_are_visible(openai: httpx.Client, emu: EmulatorServer) -> None:
    openai.post("chat/completions", json=CHAT).raise_for_status()
    openai.post("chat/completions", json=CHAT).raise_for_status()
    duplicates = emu.state.snapshot()["duplicates"]["infrai"]
    assert list(duplicates.values()) == [2]


def test_a_refused_request_is_not_remembered(native: httpx.Client, emu: EmulatorServer) -> None:
    bad = native.post("batch/submit", json={"requests": [], "idempotency_key": "retry-me"})
    native_error(bad, 400, "INVALID_REQUEST")
    fixed = native.post("batch/submit", json={"requests": [chat_item(0)], "idempotency_key": "retry-me"})
    assert data(fixed)["total_count"] == 1
    assert submissions(emu) == {"retry-me": 1}


def test_insufficient_credit(openai: httpx.Client, native: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.tables[infrai.CONFIG_TABLE]["credit_usd"] = 0.0
    core = openai_error(openai.post("chat/completions", json=CHAT), 402, "insufficient_credit")
    assert core["code"] == "INSUFFICIENT_CREDIT"
    error = native_error(
        native.post("batch/submit", json={"requests": [chat_item(0)]}), 402, "INSUFFICIENT_CREDIT"
    )
    assert "top up" in error["message"] and error["retryable"] is False
    assert submissions(emu) == {}
    # Estimates create no work, so they are never refused for credit.
    assert data(native.post("cost/estimate", json={"messages": "hi"}))["prompt_tokens"] == 1


# -- batches --------------------------------------------------------------------------------------


def test_batch_counts_stay_consistent_item_by_item(native: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.timing["infrai"] = Timing(queued=0.5, running=1.0)
    bad = {"capability": "embeddings", "body": {"model": "m"}, "custom_id": "bad"}
    submitted = data(
        native.post("batch/submit", json={"requests": [chat_item(0), bad, chat_item(2), chat_item(3)]})
    )
    batch_id = submitted["batch_id"]
    history = []
    for _ in range(12):
        status = data(native.get(f"batch/status/{batch_id}"))
        done = status["completed_count"] + status["failed_count"]
        assert status["progress"] == pytest.approx(done / 4)
        results = data(native.get(f"batch/results/{batch_id}"))
        assert len(results["items"]) == done and results["total_count"] == 4
        history.append((status["state"], done))
        emu.state.clock.advance(0.5)
    dones = [d for _, d in history]
    assert dones == sorted(dones) and dones[-1] == 4
    assert sorted(set(dones)) == list(range(5))  # items finished one after another
    states = [s for s, _ in history]
    assert states[0] == "validating" and states[-1] == "completed"
    assert "in_progress" in states and "finalizing" in states
    final = data(native.get(f"batch/status/{batch_id}"))
    assert (final["completed_count"], final["failed_count"]) == (3, 1)
    items = data(native.get(f"batch/results/{batch_id}"))["items"]
    assert items[1] == {
        "index": 1,
        "custom_id": "bad",
        "state": "failed",
        "error": {"code": "INVALID_REQUEST", "message": "'input' must be a string or a non-empty array"},
    }
    assert set(items[0]) == {"index", "custom_id", "state", "response", "cost_usd"}


def test_batch_items_of_every_capability(native: httpx.Client, emu: EmulatorServer) -> None:
    requests = [
        {"capability": "embeddings", "body": {"model": "text-embedding-3-large", "input": "x"}},
        {
            "capability": "images.generations",
            "body": {"prompt": "fox", "size": "16x16", "response_format": "url"},
        },
        {"capability": "audio.speech", "body": {"model": "tts-1", "input": "hi", "voice": "nova"}},
    ]
    batch_id = data(native.post("batch/submit", json={"requests": requests}))["batch_id"]
    items = data(native.get(f"batch/results/{batch_id}"))["items"]
    assert [i["state"] for i in items] == ["succeeded"] * 3
    assert len(items[0]["response"]["data"][0]["embedding"]) == 3072
    assert httpx.get(items[1]["response"]["data"][0]["url"]).content.startswith(b"\x89PNG")
    assert httpx.get(items[2]["response"]["url"]).content.startswith(b"RIFF")
    # Answers are made once: reading again returns the same media.
    assert data(native.get(f"batch/results/{batch_id}"))["items"] == items


def test_batch_refuses_transcription_whose_file_only_a_multipart_call_carries(native: httpx.Client) -> None:
    # The contract's transcription body is OpenAI's multipart form; a batch item's body is JSON.
    item = {"capability": "audio.transcriptions", "body": {"model": "whisper-1", "file": "UklGRg=="}}
    error = native_error(
        native.post("batch/submit", json={"requests": [chat_item(0), item]}), 400, "INVALID_REQUEST"
    )
    assert error["message"] == (
        "requests[1].capability 'audio.transcriptions' takes a multipart file upload, which a batch body "
        "cannot carry; POST each file to /v1/audio/transcriptions"
    )
    assert data(native.get("batch/list"))["total_count"] == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"requests": []}, "non-empty"),
        ({"requests": [{"capability": "video", "body": {}}]}, "capability"),
        ({"requests": [{"capability": "embeddings", "body": "x"}]}, "'body' object"),
        ({"requests": [chat_item(0)], "batch_timeout": "forever"}, "duration"),
        ({"requests": [{**chat_item(0), "custom_id": 7}]}, "custom_id"),
    ],
)
def test_batch_submit_validation(native: httpx.Client, body: Any, fragment: str) -> None:
    assert fragment in native_error(native.post("batch/submit", json=body), 400, "INVALID_REQUEST")["message"]


def test_results_paging_parameters(native: httpx.Client) -> None:
    batch_id = data(native.post("batch/submit", json={"requests": [chat_item(i) for i in range(5)]}))[
        "batch_id"
    ]
    first = data(native.get(f"batch/results/{batch_id}", params={"limit": 2}))
    assert [i["index"] for i in first["items"]] == [0, 1]
    second = data(
        native.get(f"batch/results/{batch_id}", params={"limit": 2, "cursor": first["next_cursor"]})
    )
    third = data(
        native.get(f"batch/results/{batch_id}", params={"limit": 2, "cursor": second["next_cursor"]})
    )
    assert [i["index"] for i in third["items"]] == [4] and "next_cursor" not in third
    native_error(native.get(f"batch/results/{batch_id}", params={"cursor": "bogus"}), 400, "INVALID_REQUEST")
    native_error(native.get(f"batch/results/{batch_id}", params={"limit": 0}), 400, "INVALID_REQUEST")
    native_error(native.get(f"batch/results/{batch_id}", params={"limit": "x"}), 400, "INVALID_REQUEST")


def test_batch_list_newest_first(native: httpx.Client, emu: EmulatorServer) -> None:
    ids = []
    for i in range(3):
        ids.append(data(native.post("batch/submit", json={"requests": [chat_item(i)]}))["batch_id"])
        emu.state.clock.advance(1)
    listed = data(native.get("batch/list"))
    assert [b["batch_id"] for b in listed["batches"]] == ids[::-1]
    assert listed["total_count"] == 3


def test_unknown_batch_is_not_found_everywhere(native: httpx.Client) -> None:
    for response in (
        native.get("batch/status/batch_nope"),
        native.get("batch/results/batch_nope"),
        native.post("batch/cancel/batch_nope", json={}),
        native.post("batch/export/batch_nope", json={}),
        native.post("batch/set_retention/batch_nope", json={"retention_days": 1}),
    ):
        native_error(response, 404, "NOT_FOUND")


def test_cancel_counts_once(native: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.timing["infrai"] = Timing(queued=5.0, running=1.0)
    batch_id = data(native.post("batch/submit", json={"requests": [chat_item(0)]}))["batch_id"]
    states = [
        data(native.post(f"batch/cancel/{batch_id}", json={"batch_id": batch_id}))["state"] for _ in range(3)
    ]
    assert states == ["cancelling"] * 3
    assert emu.state.cancellations["infrai"] == 1
    emu.state.clock.advance(infrai.CANCEL_SECONDS)
    status = data(native.get(f"batch/status/{batch_id}"))
    assert (status["state"], status["failed_count"], status["progress"]) == ("cancelled", 1, 1.0)


def test_export_csv(native: httpx.Client) -> None:
    bad = {"capability": "chat.completions", "body": {"model": "m"}, "custom_id": "broken"}
    batch_id = data(native.post("batch/submit", json={"requests": [chat_item(0), bad]}))["batch_id"]
    export = data(native.post(f"batch/export/{batch_id}", json={"format": "csv"}))
    assert set(export) == {"export_id", "state", "format", "download_url", "expires_at", "created_at"}
    rows = list(csv.DictReader(io.StringIO(httpx.get(export["download_url"]).text)))
    assert [(r["custom_id"], r["state"], r["error_code"]) for r in rows] == [
        ("r0", "succeeded", ""),
        ("broken", "failed", "INVALID_REQUEST"),
    ]
    assert '"chat.completion"' in rows[0]["response"]
    native_error(native.post(f"batch/export/{batch_id}", json={"format": "xml"}), 400, "INVALID_REQUEST")


def test_retention(native: httpx.Client, emu: EmulatorServer) -> None:
    batch_id = data(native.post("batch/submit", json={"requests": [chat_item(0)]}))["batch_id"]
    for days in (0, -1, "7", True, 5000):
        response = native.post(f"batch/set_retention/{batch_id}", json={"retention_days": days})
        native_error(response, 400, "INVALID_REQUEST")
    status = data(native.post(f"batch/set_retention/{batch_id}", json={"retention_days": 0.5}))
    assert status["batch_id"] == batch_id  # the answer is the batch's status
    emu.state.clock.advance(0.5 * infrai.DAY_SECONDS)
    native_error(native.get(f"batch/results/{batch_id}"), 404, "NOT_FOUND")
    native_error(native.post(f"batch/export/{batch_id}", json={}), 404, "NOT_FOUND")


# -- cost, tokens, rerank, images, voices ---------------------------------------------------------


def test_token_estimate_is_about_four_characters() -> None:
    assert [infrai.estimate_tokens("x" * n) for n in (0, 1, 4, 5, 400)] == [0, 1, 1, 2, 100]
    assert infrai.embedding_dimensions("text-embedding-3-small") == 1536
    assert infrai.embedding_dimensions("anything-else") == infrai.DEFAULT_EMBEDDING_DIMENSIONS


def test_cost_and_token_validation(native: httpx.Client) -> None:
    native_error(native.post("tokens/count", json={}), 400, "INVALID_REQUEST")
    native_error(
        native.post("cost/estimate", json={"messages": "x", "cache_strategy": "x"}), 400, "INVALID_REQUEST"
    )
    native_error(
        native.post("cost/estimate", json={"messages": "x", "expected_output_tokens": -1}),
        400,
        "INVALID_REQUEST",
    )
    native_error(
        native.post("cost/compare", json={"messages": "x", "models": "gpt-4o"}), 400, "INVALID_REQUEST"
    )
    with_tools = data(native.post("tokens/count", json={"messages": "abcd", "tools": [{"name": "f"}]}))
    assert with_tools["prompt_tokens"] == 1 + infrai.estimate_tokens('[{"name": "f"}]')
    compared = data(native.post("cost/compare", json={"messages": "x"}))
    assert [e["model"] for e in compared["estimates"]] == list(infrai.CHAT_MODELS)


def test_rerank_validation_and_document_objects(native: httpx.Client) -> None:
    ranked = data(
        native.post("rerank", json={"query": "red fox", "documents": [{"text": "a fox"}, "red fox"]})
    )
    assert ranked["results"] == [{"index": 1, "relevance_score": 1.0}, {"index": 0, "relevance_score": 0.5}]
    for body in (
        {"query": "", "documents": ["a"]},
        {"query": "q", "documents": []},
        {"query": "q", "documents": [1]},
        {"query": "q", "documents": ["a"], "top_n": 0},
    ):
        native_error(native.post("rerank", json=body), 400, "INVALID_REQUEST")


def test_upscale_refusals(native: httpx.Client, emu: EmulatorServer) -> None:
    png = base64.b64encode(media.png(4, 4)).decode()
    assert data(native.post("image/upscale", json={"image": f"data:image/png;base64,{png}"}))["new_size"] == {
        "width": 8,
        "height": 8,
    }
    for body in (
        {"image": png, "factor": 3},
        {"image": base64.b64encode(b"GIF89a").decode()},
        {"image": "%%%not base64%%%"},
        {"image": "https://elsewhere.example/cat.png"},
        {"image": base64.b64encode(media.png(1024, 1)).decode(), "factor": 4},
    ):
        native_error(native.post("image/upscale", json=body), 400, "INVALID_REQUEST")
    assert list(submissions(emu).values()) == [1]  # only the accepted upscale was recorded


def test_voices_and_sessions(native: httpx.Client) -> None:
    voices = data(native.get("tts/voices", params={"limit": 100}))
    assert voices["total_count"] == len(infrai.VOICES) and "next_cursor" not in voices
    assert all(set(v) == {"id", "name", "language", "gender"} for v in voices["voices"])
    session = data(native.post("voice/session", json={"voice": "yunxi", "ttl_seconds": 30}))
    assert set(session) == {"token", "expires_at", "url"}
    native_error(native.post("voice/session", json={"voice": "robot"}), 400, "INVALID_REQUEST")
    native_error(native.post("voice/session", json={"ttl_seconds": 5}), 400, "INVALID_REQUEST")


def test_every_operation_is_counted(openai: httpx.Client, native: httpx.Client, emu: EmulatorServer) -> None:
    openai.get("models")
    native.get("tts/voices")
    native.post("tokens/count", json={"messages": "x"})
    counted = emu.state.snapshot()["requests"]
    assert counted == {"infrai.models.list": 1, "infrai.tts.voices": 1, "infrai.tokens.count": 1}
