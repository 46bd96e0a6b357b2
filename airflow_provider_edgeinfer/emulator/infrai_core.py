"""infrai's OpenAI-compatible core in the emulator: chat, embeddings, images, audio, models.

The request checks and answers here are shared with batch items (a batch item is a core request
in a JSON body), so both judge and answer a request the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.infrai_common import (
    CHAT_MODELS,
    DEFAULT_CHAT_MODEL,
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    EMBEDDING_MODELS,
    IMAGE_MODELS,
    IMAGE_PRICE_USD,
    MAX_IMAGE_SIDE,
    RERANK_MODELS,
    SPEECH_MODELS,
    SPEECH_PRICE_PER_CHAR,
    TRANSCRIPTION_FORM_FIELDS,
    TRANSCRIPTION_MODELS,
    TRANSCRIPTION_PRICE_PER_SECOND,
    VENDOR,
    VOICE_IDS,
    Infrai,
    _chat_usd,
    _content_text,
    _core_json,
    _invalid,
    _messages_text,
    embedding_dimensions,
    estimate_tokens,
)
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id
from airflow_provider_edgeinfer.emulator.strict import enforce, query_problems

# -- request checks (shared by the core routes and batch items) -------------------------------


def _check_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' is required")
    return model


def check_chat(body: dict[str, Any]) -> None:
    _check_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid(f"messages[{i}] must be an object with a 'role'")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise _invalid("n must be 1..10")
    if body.get("stream"):
        raise _invalid("stream=true is not supported by the emulator")


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid("'input' must be a string or a non-empty array")
    if all(isinstance(v, int) for v in value):
        value = [" ".join(map(str, value))]  # one pre-tokenized input
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, list) and all(isinstance(t, int) for t in item):
            item = " ".join(map(str, item))
        if not isinstance(item, str) or not item:
            raise _invalid(f"input[{i}] must be a non-empty string or token array")
        texts.append(item)
    return texts


def check_embeddings(body: dict[str, Any]) -> None:
    model = _check_model(body)
    _embedding_inputs(body)
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or not 1 <= dimensions <= embedding_dimensions(model)
    ):
        raise _invalid(f"dimensions must be 1..{embedding_dimensions(model)} for {model}")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise _invalid("encoding_format must be float or base64")


def _image_size(body: dict[str, Any]) -> tuple[int, int]:
    size = str(body.get("size") or "1024x1024")
    if size == "auto":
        return 1024, 1024
    match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", size)
    if not match:
        raise _invalid(f"size {size!r} is not WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


def check_images(body: dict[str, Any]) -> None:
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise _invalid("'prompt' must be a non-empty string")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise _invalid("n must be 1..10")
    if body.get("response_format", "b64_json") not in ("url", "b64_json"):
        raise _invalid("response_format must be url or b64_json")
    _image_size(body)


def check_speech(body: dict[str, Any]) -> None:
    _check_model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text or len(text) > 4096:
        raise _invalid("'input' must be a string of 1..4096 characters")
    if body.get("voice") not in VOICE_IDS:
        raise _invalid(f"unknown voice {body.get('voice')!r} (known: {', '.join(VOICE_IDS)})")
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise _invalid("speed must be 0.25..4.0")


#: Batch capabilities: a batch item's ``body`` is JSON, so a core route whose body is a multipart
#: form with the file itself (transcription) is not one; the contract names no other form for it.
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "chat.completions": check_chat,
    "embeddings": check_embeddings,
    "images.generations": check_images,
    "audio.speech": check_speech,
}
MULTIPART_ONLY = {"audio.transcriptions": "/v1/audio/transcriptions"}


def estimate_usd(capability: str, body: dict[str, Any]) -> float:
    """What a request is expected to cost, before it runs (credit checks, estimates, item costs)."""
    if capability == "chat.completions":
        model = str(body.get("model") or DEFAULT_CHAT_MODEL)
        prompt = estimate_tokens(_messages_text(body.get("messages")))
        output = int(
            body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_EXPECTED_OUTPUT_TOKENS
        )
        return sum(_chat_usd(model, prompt, output))
    if capability == "embeddings":
        per_million = EMBEDDING_MODELS.get(str(body.get("model")), (0, 0.02))[1]
        value = body.get("input")
        text = value if isinstance(value, str) else json.dumps(value)
        return estimate_tokens(text) * per_million / 1e6
    if capability == "images.generations":
        n = body.get("n", 1)
        return IMAGE_PRICE_USD * (n if isinstance(n, int) else 1)
    if capability == "audio.speech":
        return len(str(body.get("input", ""))) * SPEECH_PRICE_PER_CHAR
    return 0.0


# -- core answers (shared by the core routes and batch items) ---------------------------------


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    model = str(body["model"])
    messages = [{"role": m["role"], "content": _content_text(m.get("content"))} for m in body["messages"]]
    reply = media.chat_reply(messages)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    finish = "stop"
    if isinstance(limit, int) and estimate_tokens(reply) > limit:
        reply, finish = reply[: max(1, limit * 4)], "length"
    n = int(body.get("n") or 1)
    prompt_tokens = estimate_tokens(_messages_text(body["messages"]))
    completion_tokens = estimate_tokens(reply) * n
    input_usd, output_usd = _chat_usd(model, prompt_tokens, completion_tokens)
    return {
        "id": "chatcmpl-" + new_id("", 24),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
            for i in range(n)
        ],
        # ``cost_usd`` is infrai's addition (assumed); OpenAI clients ignore unknown usage fields.
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost_usd": round(input_usd + output_usd, 8),
        },
        "system_fingerprint": "fp_edgeinfer_emulator",
    }


def embedding_list(body: dict[str, Any]) -> dict[str, Any]:
    model = str(body["model"])
    texts = _embedding_inputs(body)
    dimensions = int(body.get("dimensions") or embedding_dimensions(model))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = media.embedding(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(estimate_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def images_response(state: EmulatorState, body: dict[str, Any], base: str) -> dict[str, Any]:
    width, height = _image_size(body)
    width, height = min(width, MAX_IMAGE_SIDE), min(height, MAX_IMAGE_SIDE)
    as_url = body.get("response_format") == "url"
    data = []
    for i in range(int(body.get("n") or 1)):
        image = media.png(width, height, f"{body['prompt']}:{i}")
        if as_url:
            data.append(
                {"url": f"{base}/_media/{state.save_media(image, '.png')}", "revised_prompt": body["prompt"]}
            )
        else:
            data.append({"b64_json": base64.b64encode(image).decode(), "revised_prompt": body["prompt"]})
    return {"created": int(time.time()), "data": data}


def speech_audio(body: dict[str, Any]) -> tuple[bytes, str]:
    """(bytes, content type). Only WAV is synthesized, so other formats come back as honest WAV."""
    seconds = (0.3 + len(str(body["input"])) / 40) / float(body.get("speed", 1.0))
    frequency = 220.0 + 40.0 * VOICE_IDS.index(str(body["voice"]))
    audio = media.wav(seconds, frequency)
    if body.get("response_format") == "pcm":
        return audio[44:], "audio/pcm"
    return audio, "audio/wav"


# -- routes ----------------------------------------------------------------------------------


async def _core_route(
    api: Infrai, request: Request, op: str, answer: Callable[[dict[str, Any]], Response]
) -> Response:
    """A core route with a JSON body: checked and charged as a batch item of ``op`` would be."""
    body = await api.admit(request, op)

    def produce() -> Response:
        CHECKS[op](body)
        api.charge(estimate_usd(op, body))
        return answer(body)

    return api.once(request, op, body, produce)


async def chat(api: Infrai, request: Request) -> Response:
    return await _core_route(api, request, "chat.completions", lambda body: _core_json(chat_completion(body)))


async def embeddings(api: Infrai, request: Request) -> Response:
    return await _core_route(api, request, "embeddings", lambda body: _core_json(embedding_list(body)))


async def images(api: Infrai, request: Request) -> Response:
    def answer(body: dict[str, Any]) -> Response:
        return _core_json(images_response(api.state, body, api.base(request)))

    return await _core_route(api, request, "images.generations", answer)


async def transcriptions(api: Infrai, request: Request) -> Response:
    api.state.count(VENDOR, "audio.transcriptions")
    api.authorize(request)
    async with request.form() as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _invalid("'file' must be a file part of a multipart/form-data body")
        audio = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        unknown = sorted(set(form.keys()) - TRANSCRIPTION_FORM_FIELDS)
        enforce(
            api.state,
            VENDOR,
            query_problems(request) + [(["form", k], "is not a field the contract allows") for k in unknown],
        )
    if not audio:
        raise _invalid("the uploaded file is empty")
    response_format = fields.get("response_format", "json")
    # The multipart boundary changes between retries: the fingerprint uses the content instead.
    body: dict[str, Any] = {**fields, "file_sha256": hashlib.sha256(audio).hexdigest()}

    def produce() -> Response:
        _check_model(fields)
        if response_format not in ("json", "text", "verbose_json"):
            raise _invalid("response_format must be json, text or verbose_json")
        seconds = len(audio) / 32_000
        api.charge(seconds * TRANSCRIPTION_PRICE_PER_SECOND)
        language = fields.get("language", "")
        text = media.transcript(audio, language)
        request_id = {"x-request-id": new_id("req_", 20)}
        if response_format == "text":
            return PlainTextResponse(text, headers=request_id)
        if response_format == "verbose_json":
            return JSONResponse(
                {
                    "task": "transcribe",
                    "language": language or "english",
                    "duration": seconds,
                    "text": text,
                    "segments": [],
                },
                headers=request_id,
            )
        return JSONResponse({"text": text}, headers=request_id)

    return api.once(request, "audio.transcriptions", body, produce)


async def speech(api: Infrai, request: Request) -> Response:
    def answer(body: dict[str, Any]) -> Response:
        audio, content_type = speech_audio(body)
        return Response(audio, media_type=content_type, headers={"x-request-id": new_id("req_", 20)})

    return await _core_route(api, request, "audio.speech", answer)


async def models(api: Infrai, request: Request) -> Response:
    await api.admit(request, "models.list", body=False)
    owned = [(m, v[0]) for m, v in CHAT_MODELS.items()] + [(m, "openai") for m in EMBEDDING_MODELS]
    owned += [(m, "infrai") for m in (*IMAGE_MODELS, *SPEECH_MODELS, *TRANSCRIPTION_MODELS, *RERANK_MODELS)]
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": o} for m, o in owned]
    return _core_json({"object": "list", "data": data})
