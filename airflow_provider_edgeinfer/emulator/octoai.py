"""OctoAI, as its vendor contract describes it (example answers: ``tests/contract/octoai``).

Mounted at ``BASE/octoai``, which is at once the generation, async and text "host":

- ``POST /generate/{engine}``: image engines (and ``svd`` video), synchronous, or asynchronous with
  ``X-OctoAI-Async: 1`` (201 with ``response_id`` and ``poll_url``);
- ``POST /deployments/{name}/predict``: deployed endpoints; a name containing ``whisper`` transcribes,
  any other name echoes its input as ``{"response": <input>}``;
- ``GET /v1/requests/{id}`` (poll) and ``GET /v1/responses/{id}`` (result, 404 once expired);
- ``POST /text/v1/chat/completions`` and ``GET /text/v1/models``: the OpenAI-compatible text API.

Emulator-only conventions, for tests: a prompt containing ``violates-policy`` is refused with the
Acceptable Use Policy 400; a prompt containing ``removed-for-safety`` gets its first image removed
by the "safety filter". Images are real PNGs of the requested size even when ``image_encoding`` is
``jpeg`` (the default), so clients must not rely on the bytes being JPEG. ``svd`` videos are a
short MP4-like header followed by a PNG frame: bytes of the right shape, not a playable video.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.common import HTTPError, bearer, public_base, vendor_app
from airflow_provider_edgeinfer.emulator.octoai_schema import detail_for, engines
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id
from airflow_provider_edgeinfer.emulator.strict import (
    STRING,
    Problem,
    is_strict,
    obj,
    openai_chat_body,
    problems,
    query_problems,
)

VENDOR = "octoai"
#: Documented limit of asynchronous request bodies ("10mb", read as decimal megabytes).
MAX_ASYNC_BODY_BYTES = 10_000_000
POLICY_MARKER = "violates-policy"
POLICY_MESSAGE = "This request violates our Acceptable Use Policy."
SAFETY_MARKER = "removed-for-safety"
FAILURE_MESSAGE = (
    "injected failure: the inference ran longer than one minute and encountered an error; "
    "resubmit the request"
)
TEXT_MODELS = (
    "meta-llama-3.1-8b-instruct",
    "meta-llama-3.1-70b-instruct",
    "mixtral-8x7b-instruct",
    "mistral-7b-instruct",
)
# Not a playable MP4: an ``ftyp`` box in front of a PNG frame, enough to tell the bytes apart.
_VIDEO_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"

Handler = Callable[[Request], Awaitable[Response]]


class Invalid(Exception):
    """A FastAPI-style 422: ``detail`` entries naming the field."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("validation error")
        self.detail = detail


#: What a 422 ``detail`` entry carries (contract, "Errors", and the OpenAPI ``ValidationError``).
DETAIL_FIELDS = ("loc", "msg", "type")


def unprocessable(detail: list[dict[str, Any]]) -> Response:
    entries = [{k: entry[k] for k in DETAIL_FIELDS if k in entry} for entry in detail]
    return JSONResponse({"detail": entries}, status_code=422)


def error(status: int, message: str, code: str = "") -> Response:
    if status == 422:
        return unprocessable([{"loc": ["body"], "msg": message, "type": code or "value_error"}])
    return JSONResponse({"message": message}, status_code=status)


def _field(name: str, msg: str, type_: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", name], "msg": msg, "type": type_}]


def validating(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Invalid as exc:
            return unprocessable(exc.detail)

    return wrapped


class RequestIds:
    """Stamps every answer, errors and injected faults included, with ``X-User-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex.encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-user-request-id", request_id)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)


def _authorize(request: Request, state: EmulatorState) -> None:
    if bearer(request) != state.keys[VENDOR]:
        raise HTTPError(401, "Invalid or missing token: send Authorization: Bearer <token>")


def _admit_read(request: Request, state: EmulatorState, operation: str) -> None:
    """A call without a body: counted, authorized, and (strict mode) refused with a query parameter."""
    state.count(VENDOR, operation)
    _authorize(request, state)
    _strict(state, query_problems(request))


def _is_async(request: Request) -> bool:
    return request.headers.get("x-octoai-async", "").strip() == "1"


async def _json_body(request: Request, asynchronous: bool) -> Any:
    raw = await request.body()
    if asynchronous and len(raw) > MAX_ASYNC_BODY_BYTES:
        raise HTTPError(413, f"Asynchronous request bodies are limited to 10 MB ({len(raw)} bytes received).")
    if not raw:
        raise Invalid([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid([{"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid"}]) from None


#: Strict mode: a Whisper deployment's body (contract, "Transcription", observed).
WHISPER_BODY = obj(["audio"], audio=STRING, task=STRING, language=STRING)
#: Strict mode: an OpenAI chat-completion body (the text API is OpenAI-compatible).
CHAT_BODY = openai_chat_body()


def _strict(state: EmulatorState, found: list[Problem]) -> None:
    """In strict mode, a request the contract does not allow is a FastAPI 422 naming each problem."""
    if not found or not is_strict(state):
        return
    state.count(VENDOR, "strict_violation")
    raise Invalid(
        [
            {
                "loc": loc,
                "msg": f"strict contract check: {message}",
                "type": "extra_forbidden" if message.startswith("is not") else "value_error",
            }
            for loc, message in found
        ]
    )


def _check_policy(*texts: Any) -> None:
    if any(isinstance(t, str) and POLICY_MARKER in t for t in texts):
        raise HTTPError(400, POLICY_MESSAGE)


# -- outputs ---------------------------------------------------------------------------------


def _seeds(value: Any, count: int, identity: str) -> list[int]:
    derived = [int(identity[:8], 16) + i for i in range(count)]
    if isinstance(value, int):
        return [value + i for i in range(count)]
    if isinstance(value, list):
        return [
            v if isinstance(v, int) else derived[i] for i, v in enumerate((value + [None] * count)[:count])
        ]
    return derived


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _images(engine: str, body: dict[str, Any], identity: str) -> dict[str, Any]:
    default = 512 if engine == "sd" else 1024
    width, height = body.get("width") or default, body.get("height") or default
    count = int(body.get("num_images", 1))
    removed_first = SAFETY_MARKER in str(body.get("prompt", ""))
    images: list[dict[str, Any]] = []
    for i, seed in enumerate(_seeds(body.get("seed"), count, identity)):
        if i == 0 and removed_first:
            images.append({"image_b64": None, "removed_for_safety": True, "seed": seed, "safety_score": 0.97})
            continue
        png = media.png(width, height, f"{identity}:{i}:{seed}")
        images.append(
            {"image_b64": _b64(png), "removed_for_safety": False, "seed": seed, "safety_score": 0.01}
        )
    return {"images": images, "prediction_time_ms": 850.0 + 150.0 * count}


def _videos(body: dict[str, Any], identity: str) -> dict[str, Any]:
    count = int(body.get("num_videos", 1))
    videos = [
        {
            "video": _b64(_VIDEO_HEADER + media.png(64, 64, f"{identity}:{i}")),
            "removed_for_safety": False,
            "seed": seed,
            "safety_score": 0.01,
        }
        for i, seed in enumerate(_seeds(body.get("seed"), count, identity))
    ]
    return {"videos": videos, "prediction_time_ms": 4000.0 * count}


def _duration(audio: bytes) -> float:
    """Seconds of a WAV (from its header); other bytes count as 16 kHz 16-bit mono."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) >= 44:
        byte_rate = struct.unpack("<I", audio[28:32])[0] or 32000
        return round((len(audio) - 44) / byte_rate, 2)
    return round(max(len(audio) / 32000, 0.01), 2)


def _transcription(body: dict[str, Any]) -> dict[str, Any]:
    encoded = body.get("audio")
    if not isinstance(encoded, str):
        raise Invalid(
            _field("audio", "Field required", "missing")
            if encoded is None
            else _field("audio", "Input should be a valid string", "string_type")
        )
    try:
        audio = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(_field("audio", "Invalid base64-encoded string", "value_error")) from None
    segment = {"text": media.transcript(audio), "start": 0.0, "end": _duration(audio)}
    return {"response": {"segments": [segment]}}


def _result(kind: str, name: str, body: Any, identity: str) -> dict[str, Any]:
    """What the synchronous call answers, and what an asynchronous one later serves."""
    if not isinstance(body, dict):
        raise Invalid([{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
    if kind == "generate":
        detail = detail_for(name, body)
        if detail:
            raise Invalid(detail)
        _check_policy(body.get("prompt"), body.get("prompt_2"))
        return _videos(body, identity) if name == "svd" else _images(name, body, identity)
    if "whisper" in name.lower():
        return _transcription(body)
    return {"response": body}


# -- jobs ------------------------------------------------------------------------------------


class OctoJobs:
    """Asynchronous requests; their state is derived from the clock on every read."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    @property
    def table(self) -> dict[str, dict[str, Any]]:
        return self.state.tables["octoai.jobs"]

    def create(self, result: dict[str, Any]) -> str:
        created, starts, ends, fails = self.state.schedule(VENDOR)
        response_id = f"{new_id('', 10)}-{new_id('', 5)}"
        self.table[response_id] = {
            "created": created,
            "starts": starts,
            "ends": ends,
            "fails": fails,
            "result": result,
        }
        return response_id

    def get(self, response_id: str) -> dict[str, Any]:
        job = self.table.get(response_id)
        if job is None:
            raise HTTPError(404, f"No request with response id {response_id}.")
        return job

    def status(self, job: dict[str, Any]) -> str:
        return self.state.job_status(job, ("pending", "running", "completed", "failed"))

    def expired(self, job: dict[str, Any]) -> bool:
        completed_at = float(job["ends"])
        return self.state.clock.now() >= completed_at + self.state.octoai_retention_seconds


# -- the app ---------------------------------------------------------------------------------


def create_app(state: EmulatorState) -> ASGIApp:
    jobs = OctoJobs(state)

    async def accept(request: Request, kind: str, name: str) -> Response:
        asynchronous = _is_async(request)
        state.count(VENDOR, f"{kind}_async" if asynchronous else kind)
        _authorize(request, state)
        body = await _json_body(request, asynchronous)
        found = query_problems(request)
        if kind == "predict" and "whisper" in name.lower():
            found += problems(body, WHISPER_BODY)
        _strict(state, found)
        identity = state.identity(request.url.path, body)
        result = _result(kind, name, body, identity)  # validates: a 422 is not a submission
        state.record_submission(VENDOR, identity)
        if not asynchronous:
            return JSONResponse(result)
        response_id = jobs.create(result)
        poll_url = f"{public_base(request)}/v1/requests/{response_id}"
        return JSONResponse({"response_id": response_id, "poll_url": poll_url}, status_code=201)

    @validating
    async def generate(request: Request) -> Response:
        engine = request.path_params["engine"]
        if engine not in engines():
            state.count(VENDOR, "generate")
            raise HTTPError(404, f"Unknown engine {engine}.")
        return await accept(request, "generate", engine)

    @validating
    async def predict(request: Request) -> Response:
        return await accept(request, "predict", request.path_params["name"])

    @validating
    async def poll(request: Request) -> Response:
        _admit_read(request, state, "poll")
        response_id = request.path_params["response_id"]
        status = jobs.status(jobs.get(response_id))
        answer: dict[str, Any] = {"status": status}
        if status == "completed":
            answer["response_url"] = f"{public_base(request)}/v1/responses/{response_id}"
        elif status == "failed":
            answer["message"] = FAILURE_MESSAGE
        return JSONResponse(answer)

    @validating
    async def response(request: Request) -> Response:
        _admit_read(request, state, "get_response")
        response_id = request.path_params["response_id"]
        job = jobs.get(response_id)
        status = jobs.status(job)
        if status != "completed":
            # Undocumented; a conflict says "not now" without looking like an expired result.
            raise HTTPError(409, f"Request {response_id} is {status}; its response is not available.")
        if jobs.expired(job):
            job["result"] = None  # deleted, like the real outputs after 24 hours
            raise HTTPError(404, f"Response {response_id} has expired and was deleted.")
        return JSONResponse(job["result"])

    @validating
    async def chat(request: Request) -> Response:
        state.count(VENDOR, "chat_completions")
        _authorize(request, state)
        body = await _json_body(request, False)
        _strict(state, query_problems(request) + problems(body, CHAT_BODY))
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise Invalid(_field("model", "Field required", "missing"))
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise Invalid(
                _field("messages", "Input should be a list of {role, content} objects", "list_type")
            )
        if body.get("stream"):
            raise HTTPError(400, "The emulator does not stream chat completions.")
        state.record_submission(VENDOR, state.identity(request.url.path, body))
        _check_policy(*(m.get("content") for m in messages))
        reply = media.chat_reply(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(reply.split()),
            "total_tokens": prompt_tokens + len(reply.split()),
        }
        return JSONResponse(
            {
                "id": new_id("chatcmpl-", 20),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        )

    @validating
    async def models(request: Request) -> Response:
        _admit_read(request, state, "list_models")
        # OpenAI's model object: id, object, created, owned_by.
        data = [
            {"id": m, "object": "model", "created": 1_717_200_000, "owned_by": "octoai"} for m in TEXT_MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    routes = [
        Route("/generate/{engine}", generate, methods=["POST"]),
        Route("/deployments/{name}/predict", predict, methods=["POST"]),
        Route("/v1/requests/{response_id}", poll, methods=["GET"]),
        Route("/v1/responses/{response_id}", response, methods=["GET"]),
        Route("/text/v1/chat/completions", chat, methods=["POST"]),
        Route("/text/v1/models", models, methods=["GET"]),
    ]
    return RequestIds(vendor_app(state, VENDOR, error, routes))
