"""infrai, as its vendor contract describes it: the OpenAI-compatible core and the native ``/v1/ai``.

Two sub-apps share one state because the two surfaces answer errors differently: the core speaks
OpenAI's ``{"error": {...}}`` (so the official SDK maps them), the native methods the
``{ok, data, error, metadata}`` envelope.

Idempotency is honoured everywhere a key may travel (``Idempotency-Key`` header or body
``idempotency_key``): an identical retry replays the first answer byte for byte and creates nothing;
the same key with a different request is a 409 CONFLICT. ``state.record_submission`` is called once
per distinct creation, so "submitted exactly once" is ``state.submissions["infrai"][key] == 1``, and a
blind duplicate without a key shows up as a content identity counted twice.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.common import HTTPError, bearer, read_json, vendor_app
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id
from airflow_provider_edgeinfer.emulator.strict import (
    ANY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    OPEN_OBJECT,
    STRING,
    Shape,
    array,
    enforce,
    obj,
    openai_chat_body,
    problems,
    query_problems,
)

VENDOR = "infrai"

#: ``state.tables[CONFIG_TABLE]["credit_usd"]`` is the account's remaining credit; a submission whose
#: estimated cost exceeds it is refused with 402 INSUFFICIENT_CREDIT. Tests lower it to provoke that.
CONFIG_TABLE = "infrai.config"
DEFAULT_CREDIT_USD = 1000.0
BATCHES_TABLE = "infrai.batches"
REPLAYS_TABLE = "infrai.replays"

#: How long a cancelled batch stays "cancelling" before it is "cancelled" (clock seconds).
CANCEL_SECONDS = 1.0
DEFAULT_BATCH_TIMEOUT = "24h"
MAX_BATCH_ITEMS = 50_000
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
DAY_SECONDS = 86_400.0
#: Generated images are kept small so the emulator stays fast; the answer shape is unchanged.
MAX_IMAGE_SIDE = 256
MAX_UPSCALED_SIDE = 2048
DEFAULT_EXPECTED_OUTPUT_TOKENS = 256
BATCH_DISCOUNT = 0.5

#: Chat models: routed vendor and USD per million input / output tokens.
CHAT_MODELS: dict[str, tuple[str, float, float]] = {
    "deepseek-chat": ("deepseek", 0.27, 1.10),
    "gpt-4o-mini": ("openai", 0.15, 0.60),
    "gpt-4o": ("openai", 2.50, 10.00),
    "claude-3-5-haiku": ("anthropic", 0.80, 4.00),
    "qwen-plus": ("dashscope", 0.40, 1.20),
}
DEFAULT_CHAT_MODEL = "deepseek-chat"
#: Embedding models: dimension and USD per million tokens; any other model answers 768 dimensions.
EMBEDDING_MODELS: dict[str, tuple[int, float]] = {
    "text-embedding-3-small": (1536, 0.02),
    "text-embedding-3-large": (3072, 0.13),
}
DEFAULT_EMBEDDING_DIMENSIONS = 768
IMAGE_MODELS = ("gpt-image-1", "dall-e-3", "flux-schnell")
IMAGE_PRICE_USD = 0.04
SPEECH_MODELS = ("tts-1", "gpt-4o-mini-tts")
SPEECH_PRICE_PER_CHAR = 0.000015
TRANSCRIPTION_MODELS = ("whisper-1", "gpt-4o-transcribe")
TRANSCRIPTION_PRICE_PER_SECOND = 0.0001
RERANK_MODELS = ("rerank-v3.5", "jina-reranker-v2", "gte-rerank")
RERANK_PRICE_USD = 0.00002

VOICES: list[dict[str, str]] = [
    {"id": "alloy", "name": "Alloy", "language": "en", "gender": "neutral"},
    {"id": "echo", "name": "Echo", "language": "en", "gender": "male"},
    {"id": "fable", "name": "Fable", "language": "en", "gender": "male"},
    {"id": "nova", "name": "Nova", "language": "en", "gender": "female"},
    {"id": "shimmer", "name": "Shimmer", "language": "en", "gender": "female"},
    {"id": "xiaoxiao", "name": "Xiaoxiao", "language": "zh", "gender": "female"},
    {"id": "yunxi", "name": "Yunxi", "language": "zh", "gender": "male"},
]
VOICE_IDS = [v["id"] for v in VOICES]

#: Native error codes by HTTP status, for errors raised without one (injected faults).
NATIVE_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDIT",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
}
#: OpenAI error ``type`` by HTTP status (what the official SDK reads next to the status).
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credit",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


# -- strict mode: what the contract lets a request hold ------------------------------------------

#: OpenAI request fields of the core routes (plain OpenAI bodies, documented).
CORE_BODIES: dict[str, Shape] = {
    "chat.completions": openai_chat_body(
        stream_options=OPEN_OBJECT,
        logprobs=BOOLEAN,
        top_logprobs=INTEGER,
        parallel_tool_calls=BOOLEAN,
        metadata=OPEN_OBJECT,
        store=BOOLEAN,
        reasoning_effort=STRING,
        service_tier=STRING,
    ),
    "embeddings": obj(
        ["model", "input"], model=STRING, input=ANY, dimensions=INTEGER, encoding_format=STRING, user=STRING
    ),
    "images.generations": obj(
        ["prompt"],
        prompt=STRING,
        model=STRING,
        n=INTEGER,
        size=STRING,
        response_format=STRING,
        quality=STRING,
        style=STRING,
        user=STRING,
        background=STRING,
        output_format=STRING,
        output_compression=INTEGER,
        moderation=STRING,
    ),
    "audio.speech": obj(
        ["model", "input", "voice"],
        model=STRING,
        input=STRING,
        voice=STRING,
        response_format=STRING,
        speed=NUMBER,
        instructions=STRING,
    ),
}
TRANSCRIPTION_FORM_FIELDS = frozenset(
    {"file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]"}
)
#: Native bodies (contract table; documented unless the table says assumed).
_ESTIMATE_FIELDS: dict[str, Shape] = {
    "messages": Shape(("string", "array")),
    "model": STRING,
    "expected_output_tokens": INTEGER,
    "cache_strategy": STRING,
    "batch_mode": BOOLEAN,
    "tools": array(OPEN_OBJECT),
}
NATIVE_BODIES: dict[str, Shape] = {
    "batch.submit": obj(
        ["requests"],
        requests=array(obj(["capability", "body"], capability=STRING, body=OPEN_OBJECT, custom_id=STRING)),
        batch_timeout=STRING,
        metadata=OPEN_OBJECT,
        idempotency_key=STRING,
    ),
    "batch.cancel": obj(),
    "batch.export": obj(format=STRING, conversation_id=STRING, metadata=OPEN_OBJECT, idempotency_key=STRING),
    "batch.set_retention": obj(["retention_days"], retention_days=NUMBER),
    "cost.estimate": obj(["messages"], **_ESTIMATE_FIELDS),
    "cost.compare": obj(["messages"], models=array(STRING), **_ESTIMATE_FIELDS),
    "tokens.count": obj(
        ["messages"], messages=_ESTIMATE_FIELDS["messages"], model=STRING, tools=array(OPEN_OBJECT)
    ),
    "rerank": obj(["query", "documents"], model=STRING, query=STRING, documents=array(STRING), top_n=INTEGER),
    "image.upscale": obj(["image"], image=STRING, factor=INTEGER, idempotency_key=STRING),
    "voice.session": obj(model=STRING, voice=STRING, ttl_seconds=INTEGER),
    # The top-up body is assumed (the seed only names the call).
    "account.topup": obj(amount_usd=NUMBER),
}
#: Endpoints that page with ``cursor`` and ``limit``.
PAGED_QUERY = ("cursor", "limit")


# -- answers ----------------------------------------------------------------------------------


def native_error(status: int, message: str, code: str = "") -> Response:
    code = code or NATIVE_CODES.get(status, "UPSTREAM_ERROR" if status >= 500 else "INVALID_REQUEST")
    error = {"code": code, "message": message, "retryable": status == 429 or status >= 500}
    return JSONResponse({"ok": False, "data": None, "error": error}, status_code=status)


def core_error(status: int, message: str, code: str = "") -> Response:
    code = code or NATIVE_CODES.get(status, "UPSTREAM_ERROR" if status >= 500 else "INVALID_REQUEST")
    error = {"message": message, "type": OPENAI_TYPES.get(status, "api_error"), "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _ok(data: Any, *, cost_usd: float = 0.0, routed: str = VENDOR) -> JSONResponse:
    request_id = new_id("req_", 20)
    metadata = {
        "cost_usd": round(cost_usd, 8),
        "latency_ms": 1,
        "vendor": routed,
        "cache_hit": False,
        "request_id": request_id,
    }
    return JSONResponse(
        {"ok": True, "data": data, "error": None, "metadata": metadata}, headers={"x-request-id": request_id}
    )


def _core_json(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers={"x-request-id": str(data.get("id") or new_id("req_", 20))})


def _invalid(message: str) -> HTTPError:
    return HTTPError(400, message, "INVALID_REQUEST")


def _not_found(message: str) -> HTTPError:
    return HTTPError(404, message, "NOT_FOUND")


# -- small pure helpers -----------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """The deterministic estimate everything here uses: about four characters per token."""
    return (len(text) + 3) // 4


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}, ...]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _messages_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list):
        return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return ""


def _chat_usd(model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, float]:
    _, per_in, per_out = CHAT_MODELS.get(model, CHAT_MODELS[DEFAULT_CHAT_MODEL])
    return prompt_tokens * per_in / 1e6, completion_tokens * per_out / 1e6


def embedding_dimensions(model: str) -> int:
    return EMBEDDING_MODELS.get(model, (DEFAULT_EMBEDDING_DIMENSIONS, 0.0))[0]


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise _invalid(f"batch_timeout {text!r} is not a duration like 30m, 24h or 2d")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _page(request: Request, items: list[Any]) -> tuple[list[Any], str | None]:
    """One page by the opaque ``cursor`` (an offset here) and ``limit``; the next cursor or None."""
    cursor = request.query_params.get("cursor") or "c0"
    match = re.fullmatch(r"c(\d+)", cursor)
    if not match:
        raise _invalid(f"cursor {cursor!r} was not issued by this API")
    try:
        limit = int(request.query_params.get("limit") or DEFAULT_PAGE_LIMIT)
    except ValueError:
        raise _invalid("limit must be an integer") from None
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise _invalid(f"limit must be 1..{MAX_PAGE_LIMIT}")
    offset = int(match.group(1))
    chunk = items[offset : offset + limit]
    return chunk, (f"c{offset + limit}" if offset + limit < len(items) else None)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _media_id(url: str) -> str | None:
    path = urlsplit(url).path
    return path.rsplit("/_media/", 1)[1] if "/_media/" in path else None


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


# -- batches ----------------------------------------------------------------------------------


@dataclass
class Item:
    index: int
    custom_id: str | None
    capability: str
    body: dict[str, Any]
    ends: float
    fails: bool
    invalid: str | None
    cost_usd: float
    response: Any = None


@dataclass
class Batch:
    id: str
    created: float
    created_wall: float
    starts: float
    #: Seconds spent "finalizing" after the last item (the same draw as "validating").
    finalize: float
    timeout_at: float
    batch_timeout: str
    items: list[Item]
    base: str
    metadata: dict[str, Any] | None
    cancel_at: float | None = None
    retention_days: float | None = None
    purge_at: float | None = None
    outcomes: dict[int, tuple[str, dict[str, str] | None]] = field(default_factory=dict)

    @property
    def last_end(self) -> float:
        return max(item.ends for item in self.items)


_TERMINAL = ("completed", "failed", "cancelled", "expired")


class Batches:
    """Batch bookkeeping: items finish one after another; state is derived from the clock on read."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    @property
    def table(self) -> dict[str, Batch]:
        return self.state.tables[BATCHES_TABLE]

    def get(self, batch_id: str) -> Batch:
        batch = self.table.get(batch_id)
        if batch is None:
            raise _not_found(f"batch {batch_id} not found")
        return batch

    def create(self, requests: list[dict[str, Any]], timeout: str, metadata: Any, base: str) -> Batch:
        state = self.state
        created = state.clock.now()
        items: list[Item] = []
        starts = finalize = 0.0
        cursor = 0.0
        for index, request in enumerate(requests):
            _, item_starts, item_ends, fails = state.schedule(VENDOR)
            if index == 0:
                starts, finalize, cursor = item_starts, item_starts - created, item_starts
            cursor += item_ends - item_starts
            body = request["body"]
            invalid = None
            try:
                CHECKS[request["capability"]](body)
            except HTTPError as exc:
                invalid = exc.message
            items.append(
                Item(
                    index,
                    request.get("custom_id"),
                    request["capability"],
                    body,
                    cursor,
                    fails,
                    invalid,
                    estimate_usd(request["capability"], body),
                )
            )
        batch = Batch(
            new_id("batch_", 24),
            created,
            time.time(),
            starts,
            finalize,
            created + _duration(timeout),
            timeout,
            items,
            base,
            metadata if isinstance(metadata, dict) else None,
        )
        self.table[batch.id] = batch
        return batch

    def view(self, batch: Batch) -> tuple[str, list[tuple[Item, str, dict[str, str] | None]]]:
        """(state, finished items with their outcome) at the current clock."""
        now = self.state.clock.now()
        last_end = batch.last_end
        expired = batch.timeout_at < last_end and now >= batch.timeout_at and batch.cancel_at is None
        horizon = now
        if batch.cancel_at is not None:
            horizon = min(horizon, batch.cancel_at)
        if expired:
            horizon = min(horizon, batch.timeout_at)
        finished: list[tuple[Item, str, dict[str, str] | None]] = []
        for item in batch.items:
            if item.ends <= horizon:
                if item.invalid is not None:
                    finished.append((item, "failed", {"code": "INVALID_REQUEST", "message": item.invalid}))
                elif item.fails:
                    finished.append(
                        (
                            item,
                            "failed",
                            {
                                "code": "UPSTREAM_ERROR",
                                "message": "injected failure: the upstream model failed",
                            },
                        )
                    )
                else:
                    finished.append((item, "succeeded", None))
        if batch.cancel_at is not None:
            state = "cancelling" if now < batch.cancel_at + CANCEL_SECONDS else "cancelled"
        elif expired:
            state = "expired"
        elif now < batch.starts:
            state = "validating"
        elif now < last_end:
            state = "in_progress"
        elif now < last_end + batch.finalize:
            state = "finalizing"
        else:
            state = "failed" if all(outcome == "failed" for _, outcome, _ in finished) else "completed"
        if state in ("cancelled", "expired"):
            # Items that never ran are reported, as failed, so the counts add up to total_count.
            code = "CANCELLED" if state == "cancelled" else "EXPIRED"
            done = {item.index for item, _, _ in finished}
            finished.extend(
                (item, "failed", {"code": code, "message": f"batch {state} before this item ran"})
                for item in batch.items
                if item.index not in done
            )
            finished.sort(key=lambda entry: entry[0].index)
        return state, finished

    def status(self, batch: Batch) -> dict[str, Any]:
        state, finished = self.view(batch)
        succeeded = [item for item, outcome, _ in finished if outcome == "succeeded"]
        total = len(batch.items)
        out: dict[str, Any] = {
            "batch_id": batch.id,
            "state": state,
            "progress": round(len(finished) / total, 6),
            "total_count": total,
            "completed_count": len(succeeded),
            "failed_count": len(finished) - len(succeeded),
            "created_at": _iso(batch.created_wall),
            "total_cost_usd": round(sum(item.cost_usd for item in succeeded), 8),
        }
        return out

    def results(self, batch: Batch) -> list[dict[str, Any]]:
        if batch.purge_at is not None and self.state.clock.now() >= batch.purge_at:
            raise _not_found(
                f"the results of batch {batch.id} were purged after {batch.retention_days} day(s)"
            )
        _, finished = self.view(batch)
        rendered = []
        for item, outcome, error in finished:
            entry: dict[str, Any] = {"index": item.index, "custom_id": item.custom_id, "state": outcome}
            if outcome == "succeeded":
                entry["response"] = self.response(batch, item)
                entry["cost_usd"] = round(item.cost_usd, 8)
            else:
                entry["error"] = error
            rendered.append(entry)
        return rendered

    def response(self, batch: Batch, item: Item) -> Any:
        """An item's answer, made once on first read (images and audio are stored as media)."""
        if item.response is None:
            body = item.body
            if item.capability == "chat.completions":
                item.response = chat_completion(body)
            elif item.capability == "embeddings":
                item.response = embedding_list(body)
            elif item.capability == "images.generations":
                item.response = images_response(self.state, body, batch.base)
            else:
                audio, content_type = speech_audio(body)
                blob = self.state.save_media(audio, ".wav" if content_type == "audio/wav" else ".pcm")
                # Assumed shape: audio in a JSON result travels as a media URL.
                item.response = {"content_type": content_type, "url": f"{batch.base}/_media/{blob}"}
        return item.response


def _export(rows: list[dict[str, Any]], format: str) -> bytes:
    if format == "jsonl":
        return b"".join(json.dumps(row, sort_keys=True).encode() + b"\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "custom_id", "state", "cost_usd", "error_code", "error_message", "response"])
    for row in rows:
        error = row.get("error") or {}
        response = json.dumps(row["response"], sort_keys=True) if "response" in row else ""
        writer.writerow(
            [
                row["index"],
                row["custom_id"] or "",
                row["state"],
                row.get("cost_usd", ""),
                error.get("code", ""),
                error.get("message", ""),
                response,
            ]
        )
    return out.getvalue().encode()


# -- the app ----------------------------------------------------------------------------------


def create_app(state: EmulatorState) -> ASGIApp:
    batches = Batches(state)

    def authorize(request: Request) -> None:
        if bearer(request) != state.keys[VENDOR]:
            raise HTTPError(401, "invalid or missing API key", "UNAUTHORIZED")

    def charge(estimate: float) -> None:
        credit = float(state.tables[CONFIG_TABLE].get("credit_usd", DEFAULT_CREDIT_USD))
        if estimate > credit:
            raise HTTPError(
                402,
                f"estimated cost ${estimate:.6f} exceeds the remaining credit ${credit:.2f}; "
                "top up with POST /v1/account/topup",
                "INSUFFICIENT_CREDIT",
            )

    def base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    async def json_object(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise _invalid("the request body must be a JSON object")
        return body

    def contract(request: Request, op: str, body: Any = None, query: tuple[str, ...] = ()) -> None:
        """Strict mode: refuse query parameters and body fields the contract does not list."""
        shape = CORE_BODIES.get(op) or NATIVE_BODIES.get(op)
        found = query_problems(request, query)
        if shape is not None and body is not None:
            found += problems(body, shape)
        enforce(state, VENDOR, found)

    def once(
        request: Request,
        op: str,
        body: dict[str, Any],
        produce: Callable[[], Response],
        *,
        creates: bool = True,
    ) -> Response:
        """Run ``produce`` at most once per idempotency key; record one submission per creation."""
        header = request.headers.get("idempotency-key")
        field_key = body.get("idempotency_key")
        if header and field_key and header != field_key:
            raise _invalid("the Idempotency-Key header and the idempotency_key field differ")
        key = header or (field_key if isinstance(field_key, str) and field_key else None)
        content = {k: v for k, v in body.items() if k != "idempotency_key"}
        fingerprint = state.identity(op, request.path_params, content)
        replays = state.tables[REPLAYS_TABLE]
        if key is not None:
            prior = replays.get(f"{op}:{key}")
            if prior is not None:
                if prior["fingerprint"] != fingerprint:
                    raise HTTPError(
                        409, f"idempotency key already used for a different {op} request", "CONFLICT"
                    )
                return Response(
                    prior["body"],
                    prior["status"],
                    headers={**prior["headers"], "idempotent-replayed": "true"},
                )
        response = produce()
        if creates:
            state.record_submission(VENDOR, key or fingerprint)
        if key is not None:
            kept = {k: v for k, v in response.headers.items() if k in ("content-type", "x-request-id")}
            replays[f"{op}:{key}"] = {
                "fingerprint": fingerprint,
                "status": response.status_code,
                "body": bytes(response.body),
                "headers": kept,
            }
        return response

    # -- core ---------------------------------------------------------------------------------

    async def chat(request: Request) -> Response:
        state.count(VENDOR, "chat.completions")
        authorize(request)
        body = await json_object(request)
        contract(request, "chat.completions", body)

        def produce() -> Response:
            check_chat(body)
            charge(estimate_usd("chat.completions", body))
            return _core_json(chat_completion(body))

        return once(request, "chat.completions", body, produce)

    async def embeddings(request: Request) -> Response:
        state.count(VENDOR, "embeddings")
        authorize(request)
        body = await json_object(request)
        contract(request, "embeddings", body)

        def produce() -> Response:
            check_embeddings(body)
            charge(estimate_usd("embeddings", body))
            return _core_json(embedding_list(body))

        return once(request, "embeddings", body, produce)

    async def images(request: Request) -> Response:
        state.count(VENDOR, "images.generations")
        authorize(request)
        body = await json_object(request)
        contract(request, "images.generations", body)

        def produce() -> Response:
            check_images(body)
            charge(estimate_usd("images.generations", body))
            return _core_json(images_response(state, body, base(request)))

        return once(request, "images.generations", body, produce)

    async def transcriptions(request: Request) -> Response:
        state.count(VENDOR, "audio.transcriptions")
        authorize(request)
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _invalid("'file' must be a file part of a multipart/form-data body")
            audio = await upload.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            unknown = sorted(set(form.keys()) - TRANSCRIPTION_FORM_FIELDS)
            enforce(
                state,
                VENDOR,
                query_problems(request)
                + [(["form", k], "is not a field the contract allows") for k in unknown],
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
            charge(seconds * TRANSCRIPTION_PRICE_PER_SECOND)
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

        return once(request, "audio.transcriptions", body, produce)

    async def speech(request: Request) -> Response:
        state.count(VENDOR, "audio.speech")
        authorize(request)
        body = await json_object(request)
        contract(request, "audio.speech", body)

        def produce() -> Response:
            check_speech(body)
            charge(estimate_usd("audio.speech", body))
            audio, content_type = speech_audio(body)
            return Response(audio, media_type=content_type, headers={"x-request-id": new_id("req_", 20)})

        return once(request, "audio.speech", body, produce)

    async def models(request: Request) -> Response:
        state.count(VENDOR, "models.list")
        authorize(request)
        contract(request, "models.list")
        owned = [(m, v[0]) for m, v in CHAT_MODELS.items()] + [(m, "openai") for m in EMBEDDING_MODELS]
        owned += [
            (m, "infrai") for m in (*IMAGE_MODELS, *SPEECH_MODELS, *TRANSCRIPTION_MODELS, *RERANK_MODELS)
        ]
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": o} for m, o in owned]
        return _core_json({"object": "list", "data": data})

    # -- native: batches ----------------------------------------------------------------------

    async def batch_submit(request: Request) -> Response:
        state.count(VENDOR, "batch.submit")
        authorize(request)
        body = await json_object(request)
        contract(request, "batch.submit", body)

        def produce() -> Response:
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise _invalid("'requests' must be a non-empty array")
            if len(requests) > MAX_BATCH_ITEMS:
                raise _invalid(f"a batch holds at most {MAX_BATCH_ITEMS} requests")
            for i, entry in enumerate(requests):
                if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
                    raise _invalid(f"requests[{i}] must be an object with a 'body' object")
                route = MULTIPART_ONLY.get(str(entry.get("capability")))
                if route is not None:
                    raise _invalid(
                        f"requests[{i}].capability {entry['capability']!r} takes a multipart file upload, "
                        f"which a batch body cannot carry; POST each file to {route}"
                    )
                if entry.get("capability") not in CHECKS:
                    raise _invalid(
                        f"requests[{i}].capability {entry.get('capability')!r} is not one of "
                        f"{', '.join(CHECKS)}"
                    )
                if entry.get("custom_id") is not None and not isinstance(entry["custom_id"], str):
                    raise _invalid(f"requests[{i}].custom_id must be a string")
            timeout = str(body.get("batch_timeout") or DEFAULT_BATCH_TIMEOUT)
            _duration(timeout)
            estimate = sum(estimate_usd(r["capability"], r["body"]) for r in requests)
            charge(estimate)
            batch = batches.create(requests, timeout, body.get("metadata"), base(request))
            status = batches.status(batch)
            eta = batch.created_wall + (batch.last_end + batch.finalize - batch.created)
            return _ok(
                {
                    "batch_id": batch.id,
                    "state": status["state"],
                    "total_count": status["total_count"],
                    "estimated_eta": _iso(eta),
                    "estimated_cost_usd": round(estimate, 8),
                }
            )

        return once(request, "batch.submit", body, produce)

    async def batch_status(request: Request) -> Response:
        state.count(VENDOR, "batch.status")
        authorize(request)
        contract(request, "batch.status")
        return _ok(batches.status(batches.get(request.path_params["batch_id"])))

    async def batch_results(request: Request) -> Response:
        state.count(VENDOR, "batch.results")
        authorize(request)
        contract(request, "batch.results", query=PAGED_QUERY)
        batch = batches.get(request.path_params["batch_id"])
        rows = batches.results(batch)
        chunk, next_cursor = _page(request, rows)
        data: dict[str, Any] = {"items": chunk, "total_count": len(batch.items)}
        if next_cursor is not None:
            data["next_cursor"] = next_cursor
        return _ok(data)

    async def batch_list(request: Request) -> Response:
        state.count(VENDOR, "batch.list")
        authorize(request)
        contract(request, "batch.list", query=PAGED_QUERY)
        newest_first = sorted(batches.table.values(), key=lambda b: b.created, reverse=True)
        chunk, next_cursor = _page(request, newest_first)
        data: dict[str, Any] = {
            "batches": [batches.status(b) for b in chunk],
            "total_count": len(newest_first),
        }
        if next_cursor is not None:
            data["next_cursor"] = next_cursor
        return _ok(data)

    async def batch_cancel(request: Request) -> Response:
        state.count(VENDOR, "batch.cancel")
        authorize(request)
        body = await json_object(request)
        contract(request, "batch.cancel", body)

        def produce() -> Response:
            batch = batches.get(request.path_params["batch_id"])
            current, _ = batches.view(batch)
            if current in ("validating", "in_progress", "finalizing"):
                batch.cancel_at = state.clock.now()
                with state.lock:
                    state.cancellations[VENDOR] += 1
            return _ok(batches.status(batch))

        return once(request, "batch.cancel", body, produce, creates=False)

    async def batch_export(request: Request) -> Response:
        state.count(VENDOR, "batch.export")
        authorize(request)
        body = await json_object(request)
        contract(request, "batch.export", body)

        def produce() -> Response:
            batch = batches.get(request.path_params["batch_id"])
            format = body.get("format") or "jsonl"
            if format not in ("jsonl", "csv"):
                raise _invalid("format must be jsonl or csv")
            current, _ = batches.view(batch)
            if current not in _TERMINAL:
                raise HTTPError(
                    409, f"batch {batch.id} is {current}; export it once it has finished", "CONFLICT"
                )
            rows = batches.results(batch)
            blob = state.save_media(_export(rows, format), f".{format}")
            now = time.time()
            return _ok(
                {
                    "export_id": new_id("exp_", 20),
                    "state": "completed",
                    "format": format,
                    "download_url": f"{base(request)}/_media/{blob}",
                    "expires_at": _iso(now + 7 * DAY_SECONDS),
                    "created_at": _iso(now),
                }
            )

        return once(request, "batch.export", body, produce)

    async def batch_set_retention(request: Request) -> Response:
        state.count(VENDOR, "batch.set_retention")
        authorize(request)
        body = await json_object(request)
        contract(request, "batch.set_retention", body)

        def produce() -> Response:
            batch = batches.get(request.path_params["batch_id"])
            days = body.get("retention_days")
            if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
                raise _invalid("retention_days must be a number in (0, 3650]")
            batch.retention_days = float(days)
            batch.purge_at = state.clock.now() + float(days) * DAY_SECONDS
            return _ok(batches.status(batch))

        return once(request, "batch.set_retention", body, produce, creates=False)

    # -- native: cost, tokens, rerank ---------------------------------------------------------

    def estimate(body: dict[str, Any], model: str) -> dict[str, Any]:
        if model not in CHAT_MODELS:
            raise _invalid(f"unknown model {model!r} (known: {', '.join(CHAT_MODELS)})")
        routed = CHAT_MODELS[model][0]
        prompt_tokens = _prompt_tokens(body)
        expected = body.get("expected_output_tokens", DEFAULT_EXPECTED_OUTPUT_TOKENS)
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            raise _invalid("expected_output_tokens must be a non-negative integer")
        input_usd, output_usd = _chat_usd(model, prompt_tokens, expected)
        if body.get("batch_mode"):
            input_usd, output_usd = input_usd * BATCH_DISCOUNT, output_usd * BATCH_DISCOUNT
        return {
            "model": model,
            "vendor": routed,
            "vendor_region": "global",
            "prompt_tokens": prompt_tokens,
            "expected_output_tokens": expected,
            "breakdown": {
                "input_usd": round(input_usd, 8),
                "output_usd": round(output_usd, 8),
                "total_usd": round(input_usd + output_usd, 8),
            },
        }

    def _prompt_tokens(body: dict[str, Any]) -> int:
        messages = body.get("messages")
        if not isinstance(messages, str | list):
            raise _invalid("'messages' must be a string or an array of messages")
        if body.get("cache_strategy", "none") not in ("vendor", "infrai", "none"):
            raise _invalid("cache_strategy must be vendor, infrai or none")
        tools = body.get("tools")
        return estimate_tokens(_messages_text(messages)) + (
            estimate_tokens(json.dumps(tools)) if tools else 0
        )

    async def cost_estimate(request: Request) -> Response:
        state.count(VENDOR, "cost.estimate")
        authorize(request)
        body = await json_object(request)
        contract(request, "cost.estimate", body)
        return _ok(estimate(body, str(body.get("model") or DEFAULT_CHAT_MODEL)))

    async def cost_compare(request: Request) -> Response:
        state.count(VENDOR, "cost.compare")
        authorize(request)
        body = await json_object(request)
        contract(request, "cost.compare", body)
        wanted = body.get("models") or list(CHAT_MODELS)
        if not isinstance(wanted, list) or not all(isinstance(m, str) for m in wanted):
            raise _invalid("'models' must be an array of model ids")
        return _ok({"estimates": [estimate(body, m) for m in wanted]})

    async def tokens_count(request: Request) -> Response:
        state.count(VENDOR, "tokens.count")
        authorize(request)
        body = await json_object(request)
        contract(request, "tokens.count", body)
        model = str(body.get("model") or DEFAULT_CHAT_MODEL)
        return _ok({"prompt_tokens": _prompt_tokens(body), "model": model})

    async def rerank(request: Request) -> Response:
        state.count(VENDOR, "rerank")
        authorize(request)
        body = await json_object(request)
        contract(request, "rerank", body)
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not query.strip():
            raise _invalid("'query' must be a non-empty string")
        if not isinstance(documents, list) or not documents:
            raise _invalid("'documents' must be a non-empty array of strings")
        texts = [d.get("text") if isinstance(d, dict) else d for d in documents]
        if not all(isinstance(t, str) for t in texts):
            raise _invalid("every document must be a string (or an object with 'text')")
        top_n = body.get("top_n", len(texts))
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise _invalid("top_n must be a positive integer")
        words = set(re.findall(r"\w+", query.lower()))
        scored = [
            (
                round(len(words & set(re.findall(r"\w+", str(text).lower()))) / len(words), 6)
                if words
                else 0.0,
                i,
            )
            for i, text in enumerate(texts)
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return _ok(
            {"results": [{"index": i, "relevance_score": s} for s, i in scored[:top_n]]},
            cost_usd=RERANK_PRICE_USD * len(texts),
            routed="cohere",
        )

    # -- native: images, voices ---------------------------------------------------------------

    async def image_upscale(request: Request) -> Response:
        state.count(VENDOR, "image.upscale")
        authorize(request)
        body = await json_object(request)
        contract(request, "image.upscale", body)

        def produce() -> Response:
            image = body.get("image")
            if not isinstance(image, str) or not image:
                raise _invalid("'image' must be a URL or base64 PNG")
            factor = body.get("factor", 2)
            if factor not in (2, 4) or isinstance(factor, bool):
                raise _invalid("factor must be 2 or 4")
            is_url = image.startswith(("http://", "https://"))
            if is_url:
                blob = _media_id(image)
                data = state.read_blob(blob) if blob else None
                if data is None:
                    raise _invalid("the image URL is not reachable from infrai")
            else:
                try:
                    data = base64.b64decode(
                        image.split(",", 1)[1] if image.startswith("data:") else image, validate=True
                    )
                except (binascii.Error, ValueError):
                    raise _invalid("'image' is neither a URL nor valid base64") from None
            size = _png_size(data)
            if size is None:
                raise _invalid("'image' is not a PNG")
            width, height = size[0] * factor, size[1] * factor
            if max(width, height) > MAX_UPSCALED_SIDE:
                raise _invalid(f"the upscaled image would exceed {MAX_UPSCALED_SIDE} pixels per side")
            out = media.png(width, height, hashlib.sha256(data).hexdigest())
            charge(IMAGE_PRICE_USD / 2)
            encoded = (
                f"{base(request)}/_media/{state.save_media(out, '.png')}"
                if is_url
                else base64.b64encode(out).decode()
            )
            return _ok(
                {
                    "image": encoded,
                    "original_size": {"width": size[0], "height": size[1]},
                    "new_size": {"width": width, "height": height},
                },
                cost_usd=IMAGE_PRICE_USD / 2,
            )

        return once(request, "image.upscale", body, produce)

    async def tts_voices(request: Request) -> Response:
        state.count(VENDOR, "tts.voices")
        authorize(request)
        contract(request, "tts.voices", query=PAGED_QUERY)
        chunk, next_cursor = _page(request, VOICES)
        data: dict[str, Any] = {"voices": chunk, "total_count": len(VOICES)}
        if next_cursor is not None:
            data["next_cursor"] = next_cursor
        return _ok(data)

    async def voice_session(request: Request) -> Response:
        state.count(VENDOR, "voice.session")
        authorize(request)
        body = await json_object(request)
        contract(request, "voice.session", body)
        voice = body.get("voice") or VOICE_IDS[0]
        if voice not in VOICE_IDS:
            raise _invalid(f"unknown voice {voice!r} (known: {', '.join(VOICE_IDS)})")
        ttl = body.get("ttl_seconds", 600)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 10 <= ttl <= 3600:
            raise _invalid("ttl_seconds must be an integer in 10..3600")
        session = new_id("vs_", 20)
        scheme = "wss" if request.url.scheme == "https" else "ws"
        root = request.scope.get("root_path", "")
        return _ok(
            {
                "token": "ifr_vs_" + secrets.token_urlsafe(24),
                "expires_at": _iso(time.time() + ttl),
                "url": f"{scheme}://{request.url.netloc}{root}/voice/realtime?session={session}",
            }
        )

    async def account_topup(request: Request) -> Response:
        state.count(VENDOR, "account.topup")
        authorize(request)
        body = await json_object(request)
        contract(request, "account.topup", body)
        amount = body.get("amount_usd", 10)
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            raise _invalid("amount_usd must be a positive number")
        session = new_id("cs_", 24)
        return _ok(
            {
                "checkout_url": f"{request.url.scheme}://{request.url.netloc}/_media/checkout?session={session}",
                "amount_usd": float(amount),
                "expires_at": _iso(time.time() + 1800),
            }
        )

    async def native_not_found(request: Request) -> Response:
        raise _not_found(f"no native method at {request.url.path}")

    async def core_not_found(request: Request) -> Response:
        raise _not_found(f"no route at {request.url.path}")

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    native_routes = [
        Route("/batch/submit", batch_submit, methods=["POST"]),
        Route("/batch/status/{batch_id}", batch_status, methods=["GET"]),
        Route("/batch/results/{batch_id}", batch_results, methods=["GET"]),
        Route("/batch/list", batch_list, methods=["GET"]),
        Route("/batch/cancel/{batch_id}", batch_cancel, methods=["POST"]),
        Route("/batch/export/{batch_id}", batch_export, methods=["POST"]),
        Route("/batch/set_retention/{batch_id}", batch_set_retention, methods=["POST"]),
        Route("/cost/estimate", cost_estimate, methods=["POST"]),
        Route("/cost/compare", cost_compare, methods=["POST"]),
        Route("/tokens/count", tokens_count, methods=["POST"]),
        Route("/rerank", rerank, methods=["POST"]),
        Route("/image/upscale", image_upscale, methods=["POST"]),
        Route("/tts/voices", tts_voices, methods=["GET"]),
        Route("/voice/session", voice_session, methods=["POST"]),
        Route("/{path:path}", native_not_found, methods=every),
    ]
    core_routes = [
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        Route("/images/generations", images, methods=["POST"]),
        Route("/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/audio/speech", speech, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/{path:path}", core_not_found, methods=every),
    ]
    return Starlette(
        routes=[
            Mount("/v1/ai", app=vendor_app(state, VENDOR, native_error, native_routes)),
            Mount(
                "/v1/account",
                app=vendor_app(
                    state, VENDOR, native_error, [Route("/topup", account_topup, methods=["POST"])]
                ),
            ),
            Mount("/v1", app=vendor_app(state, VENDOR, core_error, core_routes)),
        ]
    )
