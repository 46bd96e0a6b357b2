"""OmniTensor, as its vendor contract describes it (example answers: ``tests/contract/omnitensor``).

Tokens come from ``POST /auth/token`` and expire on the emulator's clock; every other endpoint needs
one. Uploads are streamed: a model's base64 is decoded while the body arrives and a dataset's
multipart file is copied in chunks, so neither is held whole in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.common import HTTPError, bearer, read_json, vendor_app
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id
from airflow_provider_edgeinfer.emulator.strict import (
    ANY,
    INTEGER,
    NUMBER,
    OPEN_OBJECT,
    STRING,
    enforce,
    obj,
    problems,
    query_problems,
)

VENDOR = "omnitensor"
ACCOUNT_ID = "acct_emulator"
STARTING_BALANCE = Decimal("1250.50")
CENT = Decimal("0.01")
#: Decoded model bytes accepted; a test lowers it with ``state.tables[CONFIG]["max_model_bytes"]``.
MAX_MODEL_BYTES = 150 * 1024 * 1024
CONFIG = "omnitensor.config"
#: JSON fields of a model upload other than ``file`` are small; more than this is abuse.
MAX_UPLOAD_FIELDS_BYTES = 64 * 1024
COPY_CHUNK = 256 * 1024
GPU_HOURLY_OMNIT: dict[str, Decimal] = {
    "A100": Decimal("1.20"),
    "H100": Decimal("2.50"),
    "RTX4090": Decimal("0.40"),
}
UPLOADED_MODEL_COST = Decimal("0.10")

#: Status -> default code, for answers whose raiser named none (injected faults).
DEFAULT_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_BALANCE",
    404: "NOT_FOUND",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    503: "NO_CAPACITY",
}

PRESET_MODELS: list[dict[str, Any]] = [
    {
        "model_id": "sentiment-v1",
        "model_name": "Sentiment v1",
        "framework": "pytorch",
        "version": "1.0",
        "created_at": "2024-05-01T00:00:00Z",
        "description": "positive / negative / neutral",
        "cost": "0.25",
    },
    {
        "model_id": "llm-small",
        "model_name": "LLM small",
        "framework": "pytorch",
        "version": "0.3",
        "created_at": "2024-06-01T00:00:00Z",
        "description": "short text replies",
        "cost": "0.50",
    },
]
MODEL_FIELDS = ("model_id", "model_name", "framework", "version", "created_at")

#: Strict mode: request bodies as the contract gives them (documented for the token and the model
#: upload, assumed for the rest). A model upload's ``file`` is checked while it streams, so it is
#: ``ANY`` here.
TOKEN_BODY = obj(["api_key", "secret"], api_key=STRING, secret=STRING)
MODEL_UPLOAD_BODY = obj(
    ["model_name", "file", "config"],
    model_name=STRING,
    description=STRING,
    file=ANY,
    config=obj(["framework", "version"], framework=STRING, version=STRING),
)
INFERENCE_BODY = obj(["input"], input=OPEN_OBJECT, parameters=OPEN_OBJECT)
ALLOCATE_BODY = obj(
    ["gpu_type", "gpu_count", "duration_hours", "purpose"],
    gpu_type=STRING,
    gpu_count=INTEGER,
    duration_hours=NUMBER,
    purpose=STRING,
    model_id=STRING,
)
TRANSFER_BODY = obj(
    ["to_account", "amount"], to_account=STRING, amount=STRING, memo=STRING, idempotency_key=STRING
)
DATASET_FORM_FIELDS = frozenset({"file", "name", "description", "format"})

_POSITIVE = frozenset(
    ["good", "great", "love", "excellent", "happy", "fast", "strong", "amazing", "like", "wonderful", "best"]
)
_NEGATIVE = frozenset(
    ["bad", "terrible", "hate", "awful", "sad", "slow", "weak", "poor", "broken", "worst", "dislike"]
)


def error(status: int, message: str, code: str = "") -> Response:
    code = code or DEFAULT_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")
    response = JSONResponse({"error": {"code": code, "message": message, "details": {}}}, status_code=status)
    if code == "NO_CAPACITY":
        response.headers["Retry-After"] = "1"  # capacity refusals say when to come back
    return response


def _now_iso(offset_seconds: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


# -- tables (reset clears them, so each is created on first use) --------------------------------


def _tokens(state: EmulatorState) -> dict[str, float]:
    return state.tables["omnitensor.tokens"]


def _models(state: EmulatorState) -> dict[str, dict[str, Any]]:
    models = state.tables["omnitensor.models"]
    if not models:
        models.update({m["model_id"]: dict(m) for m in PRESET_MODELS})
    return models


def _account(state: EmulatorState) -> dict[str, Any]:
    account = state.tables["omnitensor.account"]
    account.setdefault("balance", STARTING_BALANCE)
    return account


def _debit(state: EmulatorState, amount: Decimal) -> Decimal:
    account = _account(state)
    if amount > account["balance"]:
        raise HTTPError(
            402, f"balance {_money(account['balance'])} OMNIT is below {amount} OMNIT", "INSUFFICIENT_BALANCE"
        )
    account["balance"] -= amount
    return Decimal(account["balance"])


def _authorize(request: Request, state: EmulatorState) -> None:
    token = bearer(request)
    expires_at = _tokens(state).get(token or "")
    if expires_at is None:
        raise HTTPError(401, "missing or unknown token", "UNAUTHORIZED")
    if state.clock.now() >= expires_at:
        raise HTTPError(401, "token expired", "UNAUTHORIZED")


async def _drain(request: Request) -> None:
    """Read what is left of a body before refusing it, so the client sees the answer, not a reset."""
    async for _ in request.stream():
        pass


# -- streamed model upload ------------------------------------------------------------------------


class _BlobSink:
    """Writes decoded model bytes to disk, hashing them, up to a limit (beyond it: counts only)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self._out: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed in close()

    @property
    def too_large(self) -> bool:
        return self.size > self.limit

    def write(self, block: bytes) -> None:
        self.size += len(block)
        if self._out is None or self.too_large:
            return
        self.digest.update(block)
        self._out.write(block)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def discard(self) -> None:
        self.close()
        os.unlink(self.path)


class FileFieldSplitter:
    """Splits a streamed JSON object into its top-level ``file`` string and everything else.

    The base64 text is decoded as it arrives and handed to ``sink``; the other fields (small) are
    kept, with the file replaced by ``null``, and parsed as ordinary JSON by :meth:`finish`. Any key
    order is accepted: the client sends ``file`` last, but nothing here depends on it.
    """

    _WHITESPACE = b" \t\r\n"

    def __init__(self, sink: Callable[[bytes], None], max_rest: int = MAX_UPLOAD_FIELDS_BYTES) -> None:
        self.sink = sink
        self.max_rest = max_rest
        self.rest = bytearray()
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.expect_key = False
        self.key_start = 0
        self.last_key: str | None = None
        self.file_next = False
        self.in_file = False
        self.file_seen = False
        self.padded = False
        self._carry = b""

    def feed(self, data: bytes) -> None:
        """Consume one chunk; raises ValueError on a body that is not a JSON object with base64 ``file``."""
        i, n = 0, len(data)
        while i < n:
            if self.in_file:
                i = self._feed_file(data, i)
                continue
            c = data[i : i + 1]
            i += 1
            if self.file_next and c not in self._WHITESPACE and c != b'"':
                self.file_next = False  # ``file`` holds a non-string; the field check reports it
            if self.in_string:
                self._append(c)
                if self.escape:
                    self.escape = False
                elif c == b"\\":
                    self.escape = True
                elif c == b'"':
                    self.in_string = False
                    if self.depth == 1 and self.expect_key:
                        self.last_key = json.loads(bytes(self.rest[self.key_start :]))
            elif c == b'"':
                if self.file_next:
                    self.file_next = False
                    self.in_file = self.file_seen = True
                    self._append(b"null")
                else:
                    self.in_string = True
                    self.key_start = len(self.rest)
                    self._append(c)
            else:
                self._structure(c)
                self._append(c)

    def _structure(self, c: bytes) -> None:
        if c in (b"{", b"["):
            self.depth += 1
            self.expect_key = self.depth == 1 and c == b"{"
        elif c in (b"}", b"]"):
            self.depth -= 1
        elif self.depth == 1 and c == b":":
            self.expect_key = False
            self.file_next = self.last_key == "file"
        elif self.depth == 1 and c == b",":
            self.expect_key = True

    def _append(self, data: bytes) -> None:
        self.rest += data
        if len(self.rest) > self.max_rest:
            raise ValueError("the fields besides 'file' are too large")

    def _feed_file(self, data: bytes, i: int) -> int:
        if self.escape:
            self.escape = False
            if data[i : i + 1] != b"/":  # ``\\/`` is the only escape base64 text can need
                raise ValueError("'file' is not base64 text")
            self._decode(b"/")
            return i + 1
        quote, slash = data.find(b'"', i), data.find(b"\\", i)
        stops = [p for p in (quote, slash) if p >= 0]
        end = min(stops) if stops else len(data)
        self._decode(data[i:end])
        if end == len(data):
            return end
        if end == slash:
            self.escape = True
            return end + 1
        self.in_file = False
        if self._carry:
            raise ValueError("'file' is not base64 text (length is not a multiple of 4)")
        return end + 1

    def _decode(self, text: bytes) -> None:
        if not text:
            return
        if self.padded:
            raise ValueError("'file' has base64 text after its padding")
        buffer = self._carry + text
        cut = len(buffer) - len(buffer) % 4
        self._carry = buffer[cut:]
        if not cut:
            return
        group = buffer[:cut]
        try:
            decoded = base64.b64decode(group, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("'file' is not base64 text") from None
        self.padded = group.endswith(b"=")
        self.sink(decoded)

    def finish(self) -> dict[str, Any]:
        if self.in_file or self.in_string or self.depth != 0:
            raise ValueError("the body ended inside a JSON value")
        try:
            fields = json.loads(bytes(self.rest))
        except ValueError:
            raise ValueError("request body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise ValueError("request body must be a JSON object")
        if not self.file_seen:
            raise ValueError("'file' (base64 text) is required")
        return fields


async def _receive_model(request: Request, sink: _BlobSink) -> dict[str, Any]:
    """Decode the upload into ``sink`` while it arrives; the other fields, validated."""
    splitter = FileFieldSplitter(sink.write)
    problem: str | None = None
    async for chunk in request.stream():
        if problem is None and not sink.too_large:
            try:
                splitter.feed(chunk)
            except ValueError as exc:
                problem = str(exc)  # keep reading: answer once the client has sent everything
    if sink.too_large:
        raise HTTPError(413, f"model larger than {sink.limit} bytes", "PAYLOAD_TOO_LARGE")
    fields: dict[str, Any] = {}
    if problem is None:
        try:
            fields = splitter.finish()
        except ValueError as exc:
            problem = str(exc)
    config = fields.get("config")
    if problem is not None:
        pass
    elif not isinstance(fields.get("model_name"), str) or not fields["model_name"]:
        problem = "model_name is required"
    elif not isinstance(config, dict) or not all(
        isinstance(config.get(k), str) for k in ("framework", "version")
    ):
        problem = "config.framework and config.version are required"
    if problem is not None:
        raise HTTPError(400, problem, "INVALID_REQUEST")
    return fields


def _store_file(source: IO[bytes], path: Path) -> tuple[int, str]:
    """Copy a spooled upload to disk in chunks: (size, sha256)."""
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _model_output(model: dict[str, Any], data: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    if model["model_id"] == "sentiment-v1":
        text = data.get("text")
        if not isinstance(text, str):
            raise HTTPError(400, "input.text (string) is required by sentiment-v1", "INVALID_REQUEST")
        words = [w.strip(".,!?;:").lower() for w in text.split()]
        pos = sum(w in _POSITIVE for w in words)
        neg = sum(w in _NEGATIVE for w in words)
        label = "positive" if pos > neg else "negative" if neg > pos else "neutral"
        score = round(0.5 + 0.5 * abs(pos - neg) / max(1, pos + neg), 4)
        return {"label": label, "score": score}
    if model["model_id"] == "llm-small":
        messages = data.get("messages")
        prompt = data.get("prompt")
        if not isinstance(messages, list):
            if not isinstance(prompt, str):
                raise HTTPError(
                    400,
                    "input.prompt (string) or input.messages (list) is required by llm-small",
                    "INVALID_REQUEST",
                )
            messages = [{"role": "user", "content": prompt}]
        words = media.chat_reply([m for m in messages if isinstance(m, dict)]).split()
        max_tokens = parameters.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            words = words[:max_tokens]
        return {"text": " ".join(words)}
    digest = hashlib.sha256(json.dumps([model["model_id"], data, parameters], sort_keys=True).encode())
    return {"prediction": digest.hexdigest()[:16], "framework": model.get("framework")}


def create_app(state: EmulatorState) -> ASGIApp:
    async def token(request: Request) -> Response:
        state.count(VENDOR, "auth_token")
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request) + problems(body, TOKEN_BODY))
        key, secret = body.get("api_key"), body.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str):
            raise HTTPError(400, "api_key and secret are required", "INVALID_REQUEST")
        if not (
            secrets.compare_digest(key, state.keys[VENDOR])
            and secrets.compare_digest(secret, state.omnitensor_secret)
        ):
            raise HTTPError(401, "invalid API key or secret", "UNAUTHORIZED")
        issued = new_id("otk_", 32)
        ttl = state.omnitensor_token_ttl
        _tokens(state)[issued] = state.clock.now() + ttl
        return JSONResponse({"token": issued, "expires_in": int(ttl) if float(ttl).is_integer() else ttl})

    async def upload_model(request: Request) -> Response:
        state.count(VENDOR, "upload_model")
        limit = int(state.tables[CONFIG].get("max_model_bytes", MAX_MODEL_BYTES))
        declared = request.headers.get("content-length")
        try:
            _authorize(request, state)
            if declared is not None and int(declared) > 4 * (limit // 3 + 1) + MAX_UPLOAD_FIELDS_BYTES:
                raise HTTPError(413, f"model larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
        except HTTPError:
            await _drain(request)
            raise
        model_id = new_id("mdl_", 16)
        sink = _BlobSink(state.blob_path(model_id), limit)
        try:
            fields = await _receive_model(request, sink)
            enforce(state, VENDOR, query_problems(request) + problems(fields, MODEL_UPLOAD_BODY))
        except BaseException:
            sink.discard()
            raise
        finally:
            sink.close()
        checksum = sink.digest.hexdigest()
        state.store_blob(model_id, sink.size, checksum)
        state.record_submission(VENDOR, state.identity("upload_model", fields["model_name"], checksum))
        _models(state)[model_id] = {
            "model_id": model_id,
            "model_name": fields["model_name"],
            "framework": fields["config"]["framework"],
            "version": fields["config"]["version"],
            "created_at": _now_iso(),
            "description": fields.get("description"),
            "size_bytes": sink.size,
            "checksum_sha256": checksum,
            "cost": str(UPLOADED_MODEL_COST),
        }
        return JSONResponse({"model_id": model_id, "status": "Model successfully uploaded"})

    async def list_models(request: Request) -> Response:
        state.count(VENDOR, "list_models")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request, ("page", "limit")))
        try:
            page = int(request.query_params.get("page", 1))
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            raise HTTPError(400, "page and limit must be integers", "INVALID_REQUEST") from None
        if page < 1 or not 1 <= limit <= 100:
            raise HTTPError(400, "page must be >= 1 and limit 1..100", "INVALID_REQUEST")
        models = list(_models(state).values())[(page - 1) * limit : page * limit]
        return JSONResponse([{k: m[k] for k in MODEL_FIELDS} for m in models])

    async def inference(request: Request) -> Response:
        state.count(VENDOR, "inference")
        _authorize(request, state)
        model_id = request.path_params["model_id"]
        model = _models(state).get(model_id)
        if model is None:
            raise HTTPError(404, f"Model {model_id} does not exist", "MODEL_NOT_FOUND")
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request) + problems(body, INFERENCE_BODY))
        data, parameters = body.get("input"), body.get("parameters") or {}
        if not isinstance(data, dict) or not isinstance(parameters, dict):
            raise HTTPError(400, "input must be an object (and parameters, if given)", "INVALID_REQUEST")
        output = _model_output(model, data, parameters)
        cost = Decimal(model["cost"])
        _debit(state, cost)
        state.record_submission(VENDOR, state.identity("inference", model_id, data, parameters))
        seed = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
        return JSONResponse(
            {
                "inference_id": new_id("inf_", 20),
                "model_id": model_id,
                "output": output,
                "latency_ms": 20 + seed[0] % 180,
                "cost_omnit": _money(cost),
            }
        )

    async def allocate(request: Request) -> Response:
        state.count(VENDOR, "allocate_compute")
        _authorize(request, state)
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request) + problems(body, ALLOCATE_BODY))
        gpu_type, count, hours = body.get("gpu_type"), body.get("gpu_count", 1), body.get("duration_hours")
        purpose, model_id = body.get("purpose", "inference"), body.get("model_id")
        if gpu_type not in GPU_HOURLY_OMNIT:
            raise HTTPError(400, f"gpu_type must be one of {', '.join(GPU_HOURLY_OMNIT)}", "INVALID_REQUEST")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise HTTPError(400, "gpu_count must be a positive integer", "INVALID_REQUEST")
        if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
            raise HTTPError(400, "duration_hours must be a positive number", "INVALID_REQUEST")
        if purpose not in ("inference", "training"):
            raise HTTPError(400, "purpose must be inference or training", "INVALID_REQUEST")
        if model_id is not None and model_id not in _models(state):
            raise HTTPError(404, f"Model {model_id} does not exist", "MODEL_NOT_FOUND")
        cost = (GPU_HOURLY_OMNIT[gpu_type] * count * Decimal(str(hours))).quantize(CENT)
        _debit(state, cost)
        state.record_submission(VENDOR, state.identity("allocate", gpu_type, count, hours, purpose, model_id))
        return JSONResponse(
            {
                "allocation_id": new_id("alloc_", 16),
                "status": "allocated",
                "gpu_type": gpu_type,
                "gpu_count": count,
                "expires_at": _now_iso(float(hours) * 3600),
                "cost_omnit": _money(cost),
            }
        )

    async def upload_dataset(request: Request) -> Response:
        state.count(VENDOR, "upload_dataset")
        try:
            _authorize(request, state)
        except HTTPError:
            await _drain(request)
            raise
        dataset_id = new_id("ds_", 20)
        async with request.form(max_files=1, max_fields=10) as form:
            unknown = sorted(set(form.keys()) - DATASET_FORM_FIELDS)
            enforce(
                state,
                VENDOR,
                query_problems(request)
                + [(["form", k], "is not a field the contract allows") for k in unknown],
            )
            upload, name = form.get("file"), form.get("name")
            if not isinstance(upload, UploadFile):
                raise HTTPError(400, "a 'file' part is required", "INVALID_REQUEST")
            if not isinstance(name, str) or not name:
                raise HTTPError(400, "'name' is required", "INVALID_REQUEST")
            description, format_ = form.get("description"), form.get("format")
            # The multipart parser spooled the part to a temporary file; copy it off the event loop.
            size, checksum = await asyncio.to_thread(_store_file, upload.file, state.blob_path(dataset_id))
        state.store_blob(dataset_id, size, checksum)
        state.record_submission(VENDOR, state.identity("upload_dataset", name, checksum))
        state.tables["omnitensor.datasets"][dataset_id] = {
            "dataset_id": dataset_id,
            "name": name,
            "description": description if isinstance(description, str) else None,
            "format": format_ if isinstance(format_, str) else None,
            "size_bytes": size,
            "checksum_sha256": checksum,
            "created_at": _now_iso(),
        }
        return JSONResponse(
            {"dataset_id": dataset_id, "status": "uploaded", "size_bytes": size, "checksum_sha256": checksum}
        )

    async def dataset_metadata(request: Request) -> Response:
        state.count(VENDOR, "dataset_metadata")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request))
        dataset_id = request.path_params["dataset_id"]
        dataset = state.tables["omnitensor.datasets"].get(dataset_id)
        if dataset is None:
            raise HTTPError(404, f"Dataset {dataset_id} does not exist", "DATASET_NOT_FOUND")
        return JSONResponse(dataset)

    async def balance(request: Request) -> Response:
        state.count(VENDOR, "balance")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request))
        return JSONResponse(
            {"account_id": ACCOUNT_ID, "balance": _money(_account(state)["balance"]), "currency": "OMNIT"}
        )

    async def transfer(request: Request) -> Response:
        state.count(VENDOR, "transfer")
        _authorize(request, state)
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request) + problems(body, TRANSFER_BODY))
        key = body.get("idempotency_key")
        replays = state.tables["omnitensor.transfers"]
        if isinstance(key, str) and key in replays:
            return JSONResponse(replays[key])  # the first answer, not a second debit
        to_account, raw = body.get("to_account"), body.get("amount")
        if not isinstance(to_account, str) or not to_account or to_account == ACCOUNT_ID:
            raise HTTPError(400, "to_account must name another account", "INVALID_REQUEST")
        if not isinstance(raw, str):
            raise HTTPError(400, "amount must be a decimal string", "INVALID_REQUEST")
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise HTTPError(400, f"amount {raw!r} is not a decimal number", "INVALID_REQUEST") from None
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
            raise HTTPError(400, "amount must be positive with at most 2 decimals", "INVALID_REQUEST")
        after = _debit(state, amount)
        identity = (
            key if isinstance(key, str) else state.identity("transfer", to_account, raw, body.get("memo"))
        )
        state.record_submission(VENDOR, identity)
        result = {
            "transaction_id": new_id("tx_", 20),
            "status": "completed",
            "amount": _money(amount),
            "balance_after": _money(after),
        }
        if isinstance(key, str):
            replays[key] = result
        return JSONResponse(result)

    routes = [
        Route("/auth/token", token, methods=["POST"]),
        Route("/ai/models/upload", upload_model, methods=["POST"]),
        Route("/ai/models", list_models, methods=["GET"]),
        Route("/ai/models/{model_id}/inference", inference, methods=["POST"]),
        Route("/compute/allocate", allocate, methods=["POST"]),
        Route("/data/upload", upload_dataset, methods=["POST"]),
        Route("/data/{dataset_id}/metadata", dataset_metadata, methods=["GET"]),
        Route("/account/balance", balance, methods=["GET"]),
        Route("/account/transfer", transfer, methods=["POST"]),
    ]
    return vendor_app(state, VENDOR, error, routes)
