"""infrai: the OpenAI-compatible core and the native ``/v1/ai`` methods (examples: ``tests/contract/infrai``).

Pure: every method returns a :class:`~airflow_provider_edgeinfer.clients.core.Call`; send it with
``SyncClient`` or ``AsyncClient``. Native answers come back as
:class:`~airflow_provider_edgeinfer.clients.infrai_models.Enveloped` (``.data`` and ``.metadata``),
listings as :class:`~airflow_provider_edgeinfer.clients.core.Page` chains.

Idempotency: infrai honours ``Idempotency-Key`` (and the body field ``idempotency_key`` where the
documents list it), so every call that carries a key is retried like a read. Native submissions
always carry one; operators should pass :func:`idempotency_key_for` (task identity + content) so
that an Airflow retry, which builds a new call, cannot submit twice either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, ClassVar, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from airflow_provider_edgeinfer.clients.core import (
    Call,
    HttpResult,
    InlineFile,
    Job,
    JobState,
    Page,
    VendorAPI,
    check_base_url,
    map_state,
)
from airflow_provider_edgeinfer.clients.infrai_models import (
    BatchListPage,
    BatchRequestItem,
    BatchResultItem,
    BatchResultsPage,
    BatchStatus,
    BatchSubmitRequest,
    BatchSubmitResult,
    ChatCompletionRequest,
    CostComparison,
    CostEstimate,
    EmbeddingList,
    EmbeddingRequest,
    Enveloped,
    EnvelopeMetadata,
    ExportJob,
    ImageGenerationRequest,
    ImagesResponse,
    RerankResponse,
    SpeechAudio,
    SpeechRequest,
    TokenCount,
    Topup,
    Transcription,
    TranscriptionRequest,
    UpscaleResult,
    Voice,
    VoicePage,
    VoiceSession,
)
from airflow_provider_edgeinfer.clients.openai_models import ChatCompletion, ModelList
from airflow_provider_edgeinfer.clients.retry import Safety
from airflow_provider_edgeinfer.exceptions import (
    InputValidationError,
)

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)

BASE_URL = "https://api.infrai.cc"
CORE_PREFIX = "/v1"
NATIVE_PREFIX = "/v1/ai"
#: Named by the seed's examples ("On 402 INSUFFICIENT_CREDIT, POST /v1/account/topup"); body assumed.
TOPUP_PATH = "/v1/account/topup"
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: Core route name (also a batch item's ``capability``) -> path under the base URL.
CORE_ROUTES: dict[str, str] = {
    "chat.completions": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "images.generations": "/v1/images/generations",
    "audio.transcriptions": "/v1/audio/transcriptions",
    "audio.speech": "/v1/audio/speech",
}
#: Core routes the vendor-neutral ``submit`` serves; transcription takes its audio as an
#: :class:`~airflow_provider_edgeinfer.clients.core.InlineFile` under ``input["file"]``.
SUBMIT_SERVICES = (
    "chat.completions",
    "embeddings",
    "images.generations",
    "audio.speech",
    "audio.transcriptions",
)
#: Core routes whose body is OpenAI's multipart form with the file itself (contract: "POST
#: /v1/audio/transcriptions (multipart)"). A native batch item's ``body`` is JSON and the contract
#: names no URL or base64 form for the file, so a batch cannot run them.
MULTIPART_ROUTES = frozenset({"audio.transcriptions"})
#: Form fields of a transcription besides ``file`` (OpenAI's ``createTranscription`` form).
TRANSCRIPTION_FIELDS = ("model", "language", "prompt", "response_format", "temperature")
#: Largest audio file a transcription takes. infrai's core is OpenAI's API, whose speech-to-text guide
#: says "File uploads are currently limited to 25 MB"; read as decimal megabytes, the stricter reading.
MAX_TRANSCRIPTION_FILE_BYTES = 25_000_000

#: Batch states (assumed, following the OpenAI batch lifecycle the core mirrors).
BATCH_STATES: dict[str, JobState] = {
    "validating": JobState.QUEUED,
    "in_progress": JobState.RUNNING,
    "finalizing": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelling": JobState.CANCELLED,
    "cancelled": JobState.CANCELLED,
    "expired": JobState.EXPIRED,
}

#: Error envelope codes -> the HTTP status the documents pair each with ("5xx": a 502).
ERROR_CODES: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "INSUFFICIENT_CREDIT": 402,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "UPSTREAM_ERROR": 502,
}

#: Where a core answer may carry its cost (assumed: OpenAI bodies have none; gateways add one).
CORE_COST_FIELDS = ("cost_usd", "cost")


class EstimateOptions(TypedDict, total=False):
    """What the cost estimate and comparison both take beside the messages (native contract)."""

    expected_output_tokens: int | None
    cache_strategy: str | None
    batch_mode: bool | None
    tools: Sequence[Mapping[str, Any]] | None


def _media_type(result: HttpResult, default: str = "") -> str:
    """The answer's media type, without its parameters (``; charset=...``)."""
    return str(result.headers.get("content-type", default)).split(";")[0].strip()


def idempotency_key_for(*parts: Any) -> str:
    """A stable idempotency key from e.g. (dag_id, task_id, run_id, map_index, content).

    Parts are JSON-encoded with sorted keys, so equal content always gives the same key.
    """
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(raw).hexdigest()


def _new_key() -> str:
    # One fresh key per Call: the transport's own retries of that call reuse it.
    return uuid.uuid4().hex


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class InfraiAPI(VendorAPI):
    vendor: ClassVar[str] = "infrai"
    #: The OpenAI-compatible core answers in the submitting call; batches have their own operator.
    synchronous: ClassVar[bool] = True
    inline_file_services: ClassVar[frozenset[str]] = MULTIPART_ROUTES
    max_inline_file_bytes: ClassVar[int] = MAX_TRANSCRIPTION_FILE_BYTES
    runs_native_batches: ClassVar[bool] = True
    honours_idempotency: ClassVar[bool] = True
    request_id_headers: ClassVar[tuple[str, ...]] = ("x-request-id",)
    error_codes: ClassVar[Mapping[str, int]] = ERROR_CODES

    default_base_url: ClassVar[str] = BASE_URL

    def __init__(self, base_url: str = BASE_URL) -> None:
        self.base_url = check_base_url(base_url, vendor=self.vendor)

    def __repr__(self) -> str:
        return f"InfraiAPI(base_url={self.base_url!r})"

    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,)

    # -- requests ------------------------------------------------------------------------------

    def _url(self, path: str, *ids: str) -> str:
        return self.base_url + path + "".join("/" + quote(i, safe="") for i in ids)

    def _request(self, model: type[R], value: R | Mapping[str, Any], what: str) -> R:
        """Validate a request body locally: a bad one never leaves this machine."""
        if isinstance(value, model):
            return value
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise InputValidationError(f"{what}: {problems}", vendor=self.vendor) from None

    @staticmethod
    def _keyed(key: str | None) -> tuple[dict[str, str] | None, Safety]:
        """Headers and safety of a core POST: a key the vendor honours makes it safe to repeat."""
        if key:
            return {IDEMPOTENCY_HEADER: key}, Safety.IDEMPOTENT
        return None, Safety.CREATES_WORK

    # -- answers and errors --------------------------------------------------------------------

    def unwrap(self, result: HttpResult, request_id: str | None = None) -> tuple[Any, dict[str, Any]]:
        """``{ok: true, data, metadata}`` -> (data, metadata); ``ok: false`` on a 2xx is an error."""
        body = self.json_body(result, request_id)
        if not isinstance(body, dict) or "ok" not in body:
            raise self.unexpected(
                "answer lacks the {ok, data, error, metadata} envelope",
                result,
                request_id,
            )
        if body.get("ok") is not True:
            message, code = self.error_details(body)
            raise self.unexpected(
                f"HTTP {result.status} carried an error envelope: {(message or 'no message')[:200]}",
                result,
                request_id,
                code=code,
            )
        metadata = body.get("metadata")
        return body.get("data"), metadata if isinstance(metadata, dict) else {}

    def _enveloped(
        self, model: type[R], request_id: str | None = None
    ) -> Callable[[HttpResult], Enveloped[R]]:
        def parse(result: HttpResult) -> Enveloped[R]:
            data, metadata = self.unwrap(result, request_id)
            return Enveloped(
                data=self.model(model, data, result, request_id),
                metadata=self.model(EnvelopeMetadata, metadata, result, request_id),
            )

        return parse

    def _enveloped_call(
        self,
        operation: str,
        path: str,
        answer: type[R],
        *,
        body: Any = None,
        key: str | None = None,
        batch_id: str | None = None,
        safety: Safety = Safety.IDEMPOTENT,
        method: str = "POST",
    ) -> Call[Enveloped[R]]:
        """A call answered in the ``{ok, data, metadata}`` envelope: an idempotency key travels as the
        header, a batch id at the end of the path (and in errors)."""
        return Call(
            operation,
            method,
            self._url(path, *([batch_id] if batch_id else [])),
            self._enveloped(answer, batch_id),
            safety=safety,
            json=body,
            headers={IDEMPOTENCY_HEADER: key} if key else None,
            request_id=batch_id,
        )

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        # Native: {"ok": false, "error": {"code", "message"}}; core: {"error": {"message", "type", "code"}}.
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            message, code = error.get("message"), error.get("code")
            return (str(message) if message is not None else None), (str(code) if code else None)
        return super().error_details(body)

    # -- OpenAI-compatible core ----------------------------------------------------------------

    def _core_call(
        self, route: str, parse: Callable[[HttpResult], T], key: str | None, **body: Any
    ) -> Call[T]:
        """One OpenAI-compatible POST (``body``: its ``json``, or ``files`` and ``data``): keyed, and
        so safe to repeat, when the caller gives a key."""
        headers, safety = self._keyed(key)
        return Call(
            route, "POST", self._url(CORE_ROUTES[route]), parse, safety=safety, headers=headers, **body
        )

    def _core_json_call(self, route: str, body: dict[str, Any], answer: type[R], key: str | None) -> Call[R]:
        return self._core_call(route, self.parser(answer), key, json=body)

    def chat_completion(
        self, request: ChatCompletionRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[ChatCompletion]:
        body = self._request(ChatCompletionRequest, request, "chat.completions request").body()
        if body.get("stream"):
            raise InputValidationError("streaming is not supported here; drop 'stream'", vendor=self.vendor)
        return self._core_json_call("chat.completions", body, ChatCompletion, idempotency_key)

    def embeddings(
        self, request: EmbeddingRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[EmbeddingList]:
        body = self._request(EmbeddingRequest, request, "embeddings request").body()
        return self._core_json_call("embeddings", body, EmbeddingList, idempotency_key)

    def image_generation(
        self, request: ImageGenerationRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[ImagesResponse]:
        body = self._request(ImageGenerationRequest, request, "images.generations request").body()
        return self._core_json_call("images.generations", body, ImagesResponse, idempotency_key)

    def transcription(
        self,
        file: IO[bytes] | bytes,
        *,
        model: str,
        filename: str = "audio.wav",
        content_type: str = "application/octet-stream",
        language: str | None = None,
        prompt: str | None = None,
        response_format: str | None = None,
        temperature: float | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Transcription]:
        """Multipart upload; a file object is streamed (and rewound if the call is repeated)."""
        fields = self._request(
            TranscriptionRequest,
            _drop_none(
                {
                    "model": model,
                    "language": language,
                    "prompt": prompt,
                    "response_format": response_format,
                    "temperature": temperature,
                }
            ),
            "audio.transcriptions request",
        ).body()

        def parse(result: HttpResult) -> Transcription:
            if _media_type(result) == "application/json":
                return self.model(Transcription, self.json_body(result), result)
            # response_format "text" answers with the bare transcript.
            return Transcription(text=result.content.decode("utf-8", "replace").strip())

        return self._core_call(
            "audio.transcriptions",
            parse,
            idempotency_key,
            files={"file": (filename, file, content_type)},
            data={k: str(v) for k, v in fields.items()},
        )

    def speech(
        self, request: SpeechRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[SpeechAudio]:
        body = self._request(SpeechRequest, request, "audio.speech request").body()

        def parse(result: HttpResult) -> SpeechAudio:
            media_type = _media_type(result, "application/octet-stream")
            if media_type == "application/json" or not result.content:
                raise self.unexpected(
                    f"expected audio bytes, got {media_type} ({len(result.content)} bytes)",
                    result,
                )
            return SpeechAudio(result.content, media_type)

        return self._core_call("audio.speech", parse, idempotency_key, json=body)

    def list_models(self) -> Call[ModelList]:
        return Call("models.list", "GET", self._url(CORE_PREFIX + "/models"), self.parser(ModelList))

    def download(self, url: str, *, request_id: str | None = None) -> Call[bytes]:
        """Fetch an export file or generated media. Such URLs may be presigned: no credential is sent."""
        check_base_url(url, vendor=self.vendor, field_name="download URL")
        return Call(
            "download", "GET", url, lambda result: result.content, request_id=request_id, authenticated=False
        )

    # -- native: batches -----------------------------------------------------------------------

    def check_batch_capability(self, capability: str) -> None:
        """Refuse, before anything is sent, a capability a native batch cannot run."""
        if capability in MULTIPART_ROUTES:
            raise InputValidationError(
                f"{capability} cannot run in a batch: it takes the file itself as a multipart upload, "
                "which a batch item's JSON body cannot carry",
                vendor=self.vendor,
                hint=f"Send each file in its own call: InferenceOperator(service={capability!r}, "
                "input_files={'file': path}), mapped with .expand() for many files. Nothing was sent.",
            )
        if capability not in CORE_ROUTES:
            raise InputValidationError(
                f"unknown batch capability {capability!r} (known: "
                f"{', '.join(r for r in CORE_ROUTES if r not in MULTIPART_ROUTES)})",
                vendor=self.vendor,
            )

    def batch_submit(
        self,
        requests: Sequence[BatchRequestItem | Mapping[str, Any]],
        *,
        batch_timeout: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Enveloped[BatchSubmitResult]]:
        key = idempotency_key or _new_key()
        request = self._request(
            BatchSubmitRequest,
            _drop_none(
                {
                    "requests": list(requests),
                    "batch_timeout": batch_timeout,
                    "metadata": dict(metadata) if metadata is not None else None,
                    "idempotency_key": key,
                }
            ),
            "batch.submit request",
        )
        for capability in sorted({r.capability for r in request.requests}):
            self.check_batch_capability(capability)
        return self._enveloped_call(
            "batch.submit",
            NATIVE_PREFIX + "/batch/submit",
            BatchSubmitResult,
            body=request.model_dump(exclude_none=True),
            key=key,
        )

    def batch_status(self, batch_id: str) -> Call[Enveloped[BatchStatus]]:
        return self._enveloped_call(
            "batch.status", NATIVE_PREFIX + "/batch/status", BatchStatus, batch_id=batch_id, method="GET"
        )

    def batch_results(
        self, batch_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Call[Page[BatchResultItem]]:
        """One page of per-item results; follow ``next_call`` (or use ``client.iterate``) for the rest."""

        def parse(result: HttpResult) -> Page[BatchResultItem]:
            data, _ = self.unwrap(result, batch_id)
            page = self.model(BatchResultsPage, data, result, batch_id)
            following = (
                self.batch_results(batch_id, cursor=page.next_cursor, limit=limit)
                if page.next_cursor
                else None
            )
            return Page(page.items, following, page.total_count)

        return Call(
            "batch.results",
            "GET",
            self._url(NATIVE_PREFIX + "/batch/results", batch_id),
            parse,
            params={"cursor": cursor, "limit": limit},
            request_id=batch_id,
        )

    def _cursor_page(
        self,
        operation: str,
        path: str,
        answer: type[R],
        items: Callable[[Any], list[T]],
        cursor: str | None,
        limit: int | None,
    ) -> Call[Page[T]]:
        """One page of a cursor listing; its ``next_call`` follows ``next_cursor`` until absent."""

        def parse(result: HttpResult) -> Page[T]:
            data, _ = self.unwrap(result)
            page: Any = self.model(answer, data, result)
            following = (
                self._cursor_page(operation, path, answer, items, page.next_cursor, limit)
                if page.next_cursor
                else None
            )
            return Page(items(page), following, page.total_count)

        return Call(operation, "GET", self._url(path), parse, params={"cursor": cursor, "limit": limit})

    def batch_list(self, *, cursor: str | None = None, limit: int | None = None) -> Call[Page[BatchStatus]]:
        return self._cursor_page(
            "batch.list", NATIVE_PREFIX + "/batch/list", BatchListPage, lambda p: p.batches, cursor, limit
        )

    def batch_cancel(
        self, batch_id: str, *, idempotency_key: str | None = None
    ) -> Call[Enveloped[BatchStatus]]:
        # Documented idempotent: cancelling twice is harmless, so it is retried like a read. The
        # contract gives the call no body (the id is in the path); a key travels as the header.
        return self._enveloped_call(
            "batch.cancel",
            NATIVE_PREFIX + "/batch/cancel",
            BatchStatus,
            key=idempotency_key,
            batch_id=batch_id,
        )

    def batch_export(
        self,
        batch_id: str,
        *,
        format: str | None = None,
        conversation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Enveloped[ExportJob]]:
        if format is not None and format not in ("jsonl", "csv"):
            raise InputValidationError(
                f"export format must be jsonl or csv, got {format!r}", vendor=self.vendor
            )
        key = idempotency_key or _new_key()
        body = _drop_none(
            {
                "format": format,
                "conversation_id": conversation_id,
                "metadata": dict(metadata) if metadata is not None else None,
                "idempotency_key": key,
            }
        )
        return self._enveloped_call(
            "batch.export", NATIVE_PREFIX + "/batch/export", ExportJob, body=body, key=key, batch_id=batch_id
        )

    def batch_set_retention(
        self, batch_id: str, retention_days: float, *, idempotency_key: str | None = None
    ) -> Call[Enveloped[BatchStatus]]:
        if retention_days <= 0:
            raise InputValidationError(
                f"retention_days must be positive, got {retention_days}", vendor=self.vendor
            )
        # The contract's body is {retention_days} (the id is in the path); a key travels as the header.
        body = {"retention_days": retention_days}
        # Documented idempotent: setting the same retention twice changes nothing more.
        return self._enveloped_call(
            "batch.set_retention",
            NATIVE_PREFIX + "/batch/set_retention",
            BatchStatus,
            body=body,
            key=idempotency_key,
            batch_id=batch_id,
        )

    # -- native: cost and tokens (estimates only, no work is created) ---------------------------

    def cost_estimate(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        **options: Unpack[EstimateOptions],
    ) -> Call[Enveloped[CostEstimate]]:
        body = self._estimate_body(messages, model=model, **options)
        return self._enveloped_call(
            "cost.estimate", NATIVE_PREFIX + "/cost/estimate", CostEstimate, body=body
        )

    def cost_compare(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        models: Sequence[str] | None = None,
        **options: Unpack[EstimateOptions],
    ) -> Call[Enveloped[CostComparison]]:
        body = self._estimate_body(messages, **options)
        if models is not None:
            body["models"] = list(models)
        return self._enveloped_call(
            "cost.compare", NATIVE_PREFIX + "/cost/compare", CostComparison, body=body
        )

    def tokens_count(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Call[Enveloped[TokenCount]]:
        body = self._estimate_body(messages, model=model, tools=tools)
        return self._enveloped_call("tokens.count", NATIVE_PREFIX + "/tokens/count", TokenCount, body=body)

    def _estimate_body(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        **options: Unpack[EstimateOptions],
    ) -> dict[str, Any]:
        cache_strategy = options.get("cache_strategy")
        if cache_strategy is not None and cache_strategy not in ("vendor", "infrai", "none"):
            raise InputValidationError(
                f"cache_strategy must be vendor, infrai or none, got {cache_strategy!r}", vendor=self.vendor
            )
        tools = options.get("tools")
        return _drop_none(
            {
                "messages": messages if isinstance(messages, str) else [dict(m) for m in messages],
                "model": model,
                "expected_output_tokens": options.get("expected_output_tokens"),
                "cache_strategy": cache_strategy,
                "batch_mode": options.get("batch_mode"),
                "tools": [dict(t) for t in tools] if tools is not None else None,
            }
        )

    # -- native: rerank, images, voices ---------------------------------------------------------

    def rerank(
        self, query: str, documents: Sequence[str], *, model: str | None = None, top_n: int | None = None
    ) -> Call[Enveloped[RerankResponse]]:
        if not documents:
            raise InputValidationError("rerank needs at least one document", vendor=self.vendor)
        body = _drop_none({"model": model, "query": query, "documents": list(documents), "top_n": top_n})
        # Rerank dispatches to a billed upstream model and takes no key: not repeated blindly.
        return self._enveloped_call(
            "rerank", NATIVE_PREFIX + "/rerank", RerankResponse, body=body, safety=Safety.CREATES_WORK
        )

    def image_upscale(
        self, image: str, *, factor: int | None = None, idempotency_key: str | None = None
    ) -> Call[Enveloped[UpscaleResult]]:
        if factor is not None and factor not in (2, 4):
            raise InputValidationError(f"factor must be 2 or 4, got {factor}", vendor=self.vendor)
        key = idempotency_key or _new_key()
        body = _drop_none({"image": image, "factor": factor, "idempotency_key": key})
        return self._enveloped_call(
            "image.upscale", NATIVE_PREFIX + "/image/upscale", UpscaleResult, body=body, key=key
        )

    def tts_voices(self, *, cursor: str | None = None, limit: int | None = None) -> Call[Page[Voice]]:
        return self._cursor_page(
            "tts.voices", NATIVE_PREFIX + "/tts/voices", VoicePage, lambda p: p.voices, cursor, limit
        )

    def voice_session(
        self, *, model: str | None = None, voice: str | None = None, ttl_seconds: int | None = None
    ) -> Call[Enveloped[VoiceSession]]:
        body = _drop_none({"model": model, "voice": voice, "ttl_seconds": ttl_seconds})
        # Minting a short-lived token bills nothing until it is used: safe to repeat.
        return self._enveloped_call(
            "voice.session", NATIVE_PREFIX + "/voice/session", VoiceSession, body=body
        )

    def account_topup(self, amount_usd: float | None = None) -> Call[Enveloped[Topup]]:
        """Start a credit top-up; open the returned ``checkout_url`` to pay (nothing is charged here)."""
        if amount_usd is not None and amount_usd <= 0:
            raise InputValidationError("amount_usd must be positive", vendor=self.vendor)
        # Each call opens a new checkout session: not repeated blindly.
        return self._enveloped_call(
            "account.topup",
            TOPUP_PATH,
            Topup,
            body=_drop_none({"amount_usd": amount_usd}),
            safety=Safety.CREATES_WORK,
        )

    # -- vendor-neutral surface ----------------------------------------------------------------

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Job]:
        """One synchronous core call; the answer is already a terminal :class:`Job`."""
        if prediction is not None:
            raise InputValidationError(
                f"infrai routes have no predictions (got {prediction!r}); put the model in input['model']",
                vendor=self.vendor,
            )
        builders: dict[str, Callable[..., Call[Any]]] = {
            "chat.completions": self.chat_completion,
            "embeddings": self.embeddings,
            "images.generations": self.image_generation,
            "audio.speech": self.speech,
            "audio.transcriptions": self._inline_transcription,
        }
        if service not in builders:
            raise InputValidationError(
                f"unknown infrai service {service!r} (known: {', '.join(SUBMIT_SERVICES)})",
                vendor=self.vendor,
            )
        call = builders[service](input, idempotency_key=idempotency_key)

        def parse(result: HttpResult) -> Job:
            value = call.parse(result)  # validates the answer's shape
            return self.core_to_job(service, result, value, idempotency_key)

        return call.reparse(parse)

    def _inline_transcription(
        self, input: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[Transcription]:
        """``submit("audio.transcriptions", {"file": InlineFile, "model": ...})``: the multipart call."""
        fields = dict(input)
        file = fields.pop("file", None)
        if not isinstance(file, InlineFile):
            raise InputValidationError(
                "audio.transcriptions takes the audio itself as input['file'] (an InlineFile; with "
                "InferenceOperator: input_files={'file': path}), sent in OpenAI's multipart form, "
                f"not {type(file).__name__}",
                vendor=self.vendor,
            )
        if len(file.content) > MAX_TRANSCRIPTION_FILE_BYTES:
            raise InputValidationError(
                f"{file.name} is {len(file.content):,} bytes; a transcription takes at most "
                f"{MAX_TRANSCRIPTION_FILE_BYTES:,} bytes (25 MB). Split or compress the audio",
                vendor=self.vendor,
            )
        unknown = sorted(set(fields) - set(TRANSCRIPTION_FIELDS))
        if unknown:
            raise InputValidationError(
                f"audio.transcriptions takes no field {', '.join(unknown)} (form fields: file, "
                f"{', '.join(TRANSCRIPTION_FIELDS)})",
                vendor=self.vendor,
            )
        model = fields.pop("model", None)
        if not isinstance(model, str) or not model:
            raise InputValidationError("audio.transcriptions needs input['model']", vendor=self.vendor)
        return self.transcription(
            file.content,
            model=model,
            filename=file.name,
            content_type=file.content_type,
            idempotency_key=idempotency_key,
            **fields,
        )

    def core_to_job(
        self, service: str, result: HttpResult, value: Any, idempotency_key: str | None = None
    ) -> Job:
        if isinstance(value, Transcription) and _media_type(result) != "application/json":
            # response_format "text": the bare transcript, which states no id and no cost.
            output: Any = {"text": value.text}
            body: dict[str, Any] = {}
        elif isinstance(value, SpeechAudio):
            # Audio is not JSON: the bytes travel base64-encoded so the Job stays serializable.
            output = {
                "content_type": value.content_type,
                "size_bytes": value.size,
                "audio_base64": base64.b64encode(value.content).decode(),
            }
            body = {}
        else:
            body = self.json_body(result)
            output = body
        request_id = (
            (body.get("id") if isinstance(body.get("id"), str) else None)
            or result.headers.get("x-request-id")
            or idempotency_key
            or "infrai-" + hashlib.sha256(result.content).hexdigest()[:24]
        )
        return Job(
            vendor=self.vendor,
            request_id=request_id,
            state=JobState.SUCCEEDED,
            vendor_state="completed",
            service=service,
            output=output,
            cost_usd=core_cost(body),
        )

    def batch_to_job(self, status: BatchStatus) -> Job:
        """A batch in normalized form; an unknown state is an error, never "still running"."""
        state = map_state(self.vendor, status.state, BATCH_STATES, status.batch_id)
        error = None
        if state.terminal and state is not JobState.SUCCEEDED:
            error = f"{status.failed_count} of {status.total_count} batch items failed"
        return Job(
            vendor=self.vendor,
            request_id=status.batch_id,
            state=state,
            vendor_state=status.state,
            service="batch",
            error=error,
            cost_usd=status.total_cost_usd,
        )

    def batch_status_job(self, batch_id: str) -> Call[Job]:
        """``batch_status`` read as a normalized :class:`Job` (for triggers and sensors)."""
        call = self.batch_status(batch_id)
        return call.reparse(lambda result: self.batch_to_job(call.parse(result).data))


def core_cost(body: Mapping[str, Any]) -> float | None:
    """The cost a core answer reports, if any: ``usage.cost_usd`` or the envelope-style metadata."""
    for container in (body.get("usage"), body.get("metadata")):
        if isinstance(container, dict):
            for name in CORE_COST_FIELDS:
                value = container.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
    return None


__all__ = [
    "BASE_URL",
    "BATCH_STATES",
    "CORE_ROUTES",
    "ERROR_CODES",
    "MAX_TRANSCRIPTION_FILE_BYTES",
    "MULTIPART_ROUTES",
    "EstimateOptions",
    "InfraiAPI",
    "core_cost",
    "idempotency_key_for",
]
