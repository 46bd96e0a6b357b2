"""What every infrai route of the emulator shares: the contract's tables, error shapes, helpers.

:class:`Infrai` is the context each module-level handler receives (bound in
:func:`~airflow_provider_edgeinfer.emulator.infrai.create_app`): the emulator's state, the batch
book, and the steps every route takes (count, authorize, read, strict-mode check, idempotent replay,
credit check).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_edgeinfer.emulator.common import HTTPError, bearer, read_json
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

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.emulator.infrai_batches import Batches

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


# -- the context of every route ------------------------------------------------------------------


class Infrai:
    """One emulated infrai account: its state and batches, and the steps every route shares."""

    def __init__(self, state: EmulatorState, batches: Batches) -> None:
        self.state = state
        self.batches = batches

    def authorize(self, request: Request) -> None:
        if bearer(request) != self.state.keys[VENDOR]:
            raise HTTPError(401, "invalid or missing API key", "UNAUTHORIZED")

    async def admit(
        self, request: Request, op: str, *, body: bool = True, query: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """What every route does first: count the call, check the key, read the JSON object body
        (unless ``body`` is False) and, in strict mode, check it and the query against the contract.
        Returns the body ({} for a route without one)."""
        self.state.count(VENDOR, op)
        self.authorize(request)
        found = await self.json_object(request) if body else None
        self.contract(request, op, found, query)
        return found or {}

    def charge(self, estimate: float) -> None:
        credit = float(self.state.tables[CONFIG_TABLE].get("credit_usd", DEFAULT_CREDIT_USD))
        if estimate > credit:
            raise HTTPError(
                402,
                f"estimated cost ${estimate:.6f} exceeds the remaining credit ${credit:.2f}; "
                "top up with POST /v1/account/topup",
                "INSUFFICIENT_CREDIT",
            )

    @staticmethod
    def base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    @staticmethod
    async def json_object(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise _invalid("the request body must be a JSON object")
        return body

    def contract(self, request: Request, op: str, body: Any = None, query: tuple[str, ...] = ()) -> None:
        """Strict mode: refuse query parameters and body fields the contract does not list."""
        shape = CORE_BODIES.get(op) or NATIVE_BODIES.get(op)
        found = query_problems(request, query)
        if shape is not None and body is not None:
            found += problems(body, shape)
        enforce(self.state, VENDOR, found)

    def once(
        self,
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
        fingerprint = self.state.identity(op, request.path_params, content)
        replays = self.state.tables[REPLAYS_TABLE]
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
            self.state.record_submission(VENDOR, key or fingerprint)
        if key is not None:
            kept = {k: v for k, v in response.headers.items() if k in ("content-type", "x-request-id")}
            replays[f"{op}:{key}"] = {
                "fingerprint": fingerprint,
                "status": response.status_code,
                "body": bytes(response.body),
                "headers": kept,
            }
        return response
