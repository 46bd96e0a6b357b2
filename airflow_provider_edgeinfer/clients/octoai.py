"""OctoAI image generation, deployed endpoints and text (contract examples: ``tests/contract/octoai``).

Pure: every method returns a :class:`~airflow_provider_edgeinfer.clients.core.Call`; send it with
``SyncClient`` or ``AsyncClient``.

A *service* is an image engine path (``"generate/sdxl"``, on the generation host), the name of a
deployed endpoint (``"whisper"``, served at the deployment URL template), or ``"chat/completions"``
(also spelled ``"chat.completions"``, infrai's route name): the OpenAI-compatible text API on the
text host, whose input is the OpenAI body (``model``, ``messages``, ...) and which answers in the
call itself (:meth:`OctoAIAPI.answers_in_call`). Image-engine bodies are validated locally against
OctoAI's published OpenAPI description (:mod:`~airflow_provider_edgeinfer.clients.octoai_schema`), so
a bad field is reported before anything is sent or billed.

Beside this module: the request and answer shapes (``octoai_models``), the OpenAPI checks
(``octoai_schema``) and the decoding of generated media (``octoai_media``); their public names are
importable from here too.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from airflow_provider_edgeinfer.clients.core import (
    Call,
    HttpResult,
    InlineFile,
    Job,
    JobState,
    VendorAPI,
    check_base_url,
    host_of,
    is_loopback,
    map_state,
)
from airflow_provider_edgeinfer.clients.octoai_media import DecodedMedia, decode_media
from airflow_provider_edgeinfer.clients.octoai_models import (
    VENDOR,
    AsyncAccepted,
    ImageGenerationRequest,
    ImageGenerationResponse,
    PollStatus,
    VideoGenerationRequest,
    VideoGenerationResponse,
    WhisperResponse,
)
from airflow_provider_edgeinfer.clients.octoai_schema import (
    describe_detail,
    image_engines,
    openapi_document,
    schema_errors,
)
from airflow_provider_edgeinfer.clients.openai_models import ChatCompletion, ModelList
from airflow_provider_edgeinfer.clients.retry import Safety
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
    InputValidationError,
    JobFailedError,
    ResultExpiredError,
    UnexpectedResponseError,
)

T = TypeVar("T")

IMAGE_BASE_URL = "https://image.octoai.run"
ASYNC_BASE_URL = "https://async.octoai.run"
TEXT_BASE_URL = "https://text.octoai.run"
#: Deployed endpoints live on their own sub-domain (documented: ``https://<name>.octoai.run``).
DEPLOYMENT_URL_TEMPLATE = "https://{name}.octoai.run"

#: Header that turns any inference into an asynchronous one (documented).
ASYNC_HEADER = "X-OctoAI-Async"
#: Documented as "10mb"; read as decimal megabytes, the stricter of the two readings, so the client
#: never sends a body the vendor might refuse.
MAX_ASYNC_BODY_BYTES = 10_000_000
POLL_PATH = "/v1/requests/{response_id}"
RESPONSE_PATH = "/v1/responses/{response_id}"
#: Path of a deployed endpoint's inference route (observed for Whisper deployments).
PREDICT_PATH = "/predict"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
#: Service names of the text API's chat completions (``text.octoai.run/v1/chat/completions``, OpenAI-
#: compatible, documented). The dotted one is infrai's route name, so a DAG can switch connection.
#: Neither can be a deployment (a deployment name has no "/" or ".") or an image engine.
TEXT_CHAT_SERVICES = ("chat/completions", "chat.completions")
#: Assumed: an OpenAI-compatible text API lists its models here; the hook's connection test uses it.
MODELS_PATH = "/v1/models"
#: Assumed (OctoAI's documents, "A failed inference"): a 4xx on poll fails the request, except these, which
#: speak about our credential, a timeout or the rate limit rather than about the inference.
POLL_STATUSES_NOT_FAILURE = frozenset({401, 403, 408, 429})
#: OctoAI exposes no per-request page for humans.
CONSOLE_URL: str | None = None
#: What a deployment name holds when it serves Whisper (observed: "Transcription" in OctoAI's documents); the
#: file it transcribes travels base64-encoded in the body's ``audio`` field.
WHISPER_DEPLOYMENT_MARK = "whisper"
#: Room left in an asynchronous body for the fields beside the base64 file (task, language, keys).
_BODY_OVERHEAD_BYTES = 64 * 1024
#: Largest file sent inline: its base64 (4 bytes per 3) plus the other fields within the 10 MB body.
MAX_INLINE_FILE_BYTES = (MAX_ASYNC_BODY_BYTES - _BODY_OVERHEAD_BYTES) // 4 * 3

STATES: dict[str, JobState] = {
    "pending": JobState.QUEUED,
    "running": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}

# A deployment name becomes a DNS label of the deployment host.
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _reparse(call: Call[Any], operation: str, parse: Callable[[HttpResult], T]) -> Call[T]:
    """The same exchange under another name, answered through ``parse``."""
    return replace(call.reparse(parse), operation=operation)


# -- the API ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a service is served and, for image engines, which engine of the OpenAPI file it is."""

    service: str
    url: str
    engine: str | None = None


def deployment_host_pattern(template: str) -> str:
    """The host (or ``*.domain`` pattern) every deployment URL of ``template`` lands on."""
    netloc = urlsplit(template).netloc
    if "{name}" not in netloc:
        return host_of(template.replace("{name}", "deployment-name"))
    first, _, domain = netloc.partition(".")
    # "*.run" would hand the token to any .run host: demand a real domain under the name's label.
    if "{name}" not in first or "{name}" in domain or "." not in domain.split(":")[0]:
        raise ConfigurationError(
            f"deployment_url_template {template!r} must put {{name}} in the first label of a host under a "
            "domain such as octoai.run, or in the path",
            vendor=VENDOR,
        )
    return f"*.{domain}"


def check_deployment_template(template: str) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if fields != {"name"}:
        raise ConfigurationError(
            f"deployment_url_template {template!r} must contain {{name}} and no other placeholder",
            vendor=VENDOR,
            hint="Use e.g. https://{name}.octoai.run.",
        )
    check_base_url(
        template.replace("{name}", "deployment-name"), vendor=VENDOR, field_name="deployment_url_template"
    )
    deployment_host_pattern(template)
    return template.rstrip("/")


class OctoAIAPI(VendorAPI):
    vendor: ClassVar[str] = VENDOR
    request_id_headers: ClassVar[tuple[str, ...]] = ("X-User-Request-ID",)
    inline_file_services: ClassVar[frozenset[str]] = frozenset({WHISPER_DEPLOYMENT_MARK})
    max_inline_file_bytes: ClassVar[int] = MAX_INLINE_FILE_BYTES

    def __init__(
        self,
        image_base_url: str = IMAGE_BASE_URL,
        async_base_url: str = ASYNC_BASE_URL,
        text_base_url: str = TEXT_BASE_URL,
        deployment_url_template: str = DEPLOYMENT_URL_TEMPLATE,
    ) -> None:
        self.image_base_url = check_base_url(image_base_url, vendor=self.vendor, field_name="host")
        self.async_base_url = check_base_url(async_base_url, vendor=self.vendor, field_name="async_host")
        self.text_base_url = check_base_url(text_base_url, vendor=self.vendor, field_name="text_host")
        self.deployment_url_template = check_deployment_template(deployment_url_template)

    def __repr__(self) -> str:
        return f"OctoAIAPI(image={self.image_base_url!r}, async={self.async_base_url!r})"

    def base_urls(self) -> tuple[str, ...]:
        return (self.image_base_url, self.async_base_url, self.text_base_url)

    def allowed_hosts(self) -> frozenset[str]:
        return super().allowed_hosts() | {deployment_host_pattern(self.deployment_url_template)}

    # -- addressing ----------------------------------------------------------------------------

    def endpoint(self, service: str) -> Endpoint:
        """``"generate/sdxl"`` (or ``"sdxl"``) -> an image engine; ``"whisper"`` -> a deployment."""
        name = service.strip().strip("/")
        if name in image_engines():
            name = f"generate/{name}"
        if "/" in name:
            path = "/".join(quote(p, safe="") for p in name.split("/"))
            engine = name.removeprefix("generate/") if name.startswith("generate/") else None
            return Endpoint(
                service, f"{self.image_base_url}/{path}", engine if engine in image_engines() else None
            )
        if not _DEPLOYMENT_NAME.match(name):
            raise InputValidationError(
                f"service {service!r} is neither an engine path such as 'generate/sdxl' nor a deployment "
                "name (letters, digits and inner hyphens)",
                vendor=self.vendor,
            )
        return Endpoint(service, self.deployment_url_template.format(name=name) + PREDICT_PATH)

    def _follow(self, url: str, what: str, request_id: str | None) -> str:
        """A vendor-given URL, if it points at the async or generation host; never anywhere else."""
        parts = urlsplit(url)
        host = host_of(url) if parts.hostname else ""
        trusted = {host_of(self.async_base_url), host_of(self.image_base_url)}
        secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))
        if host not in trusted or not secure:
            raise UnexpectedResponseError(
                f"{what} points to {parts.scheme}://{host}, which is not this connection's async or "
                "generation host; refusing to send the token there",
                vendor=self.vendor,
                request_id=request_id,
            )
        return url

    def _poll_url(self, request_id: str) -> str:
        return self.async_base_url + POLL_PATH.format(response_id=quote(request_id, safe=""))

    def _response_url(self, request_id: str) -> str:
        return self.async_base_url + RESPONSE_PATH.format(response_id=quote(request_id, safe=""))

    @staticmethod
    def _id_and_url(id_or_url: str) -> tuple[str, str | None]:
        if "://" in id_or_url:
            return urlsplit(id_or_url).path.rstrip("/").rsplit("/", 1)[-1], id_or_url
        return id_or_url, None

    # -- bodies --------------------------------------------------------------------------------

    def _body(self, endpoint: Endpoint, input: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
        body = input.model_dump(exclude_none=True) if isinstance(input, BaseModel) else dict(input)
        if endpoint.engine is not None:
            detail = schema_errors(endpoint.engine, body)
            if detail:
                raise InputValidationError(
                    f"invalid request for {endpoint.engine}: {describe_detail(detail)}", vendor=self.vendor
                )
        return body

    def _encode(self, body: dict[str, Any], *, asynchronous: bool) -> bytes:
        # Serialized here rather than by httpx so the size checked is the size sent.
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if asynchronous and len(content) > MAX_ASYNC_BODY_BYTES:
            raise InputValidationError(
                f"the request body is {len(content):,} bytes; OctoAI accepts asynchronous request bodies "
                f"of at most 10 MB ({MAX_ASYNC_BODY_BYTES:,} bytes). Send large media by URL or shrink it",
                vendor=self.vendor,
            )
        return content

    def _headers(self, asynchronous: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if asynchronous:
            headers[ASYNC_HEADER] = "1"
        return headers

    # -- answers and errors ---------------------------------------------------------------------

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        if isinstance(body, dict):
            detail = body.get("detail")
            if isinstance(detail, list) and detail:
                first = detail[0]
                code = first.get("type") if isinstance(first, dict) else None
                return f"invalid request: {describe_detail(detail)}", code if isinstance(code, str) else None
        return super().error_details(body)

    def _object(self, result: HttpResult, request_id: str | None = None) -> dict[str, Any]:
        data = self.json_body(result, request_id)
        if not isinstance(data, dict):
            raise self.unexpected(
                f"expected a JSON object, got {type(data).__name__}",
                result,
                request_id,
            )
        return data

    def _model_parser(self, model: type[Any], request_id: str | None = None) -> Callable[[HttpResult], Any]:
        def parse(result: HttpResult) -> Any:
            return self.model(model, self._object(result, request_id), result, request_id)

        return parse

    # -- synchronous inference -----------------------------------------------------------------

    def infer(self, service: str, input: BaseModel | Mapping[str, Any]) -> Call[dict[str, Any]]:
        """Synchronous inference on any endpoint; the answer is the result, as JSON."""
        endpoint = self.endpoint(service)
        body = self._body(endpoint, input)
        return Call(
            "infer",
            "POST",
            endpoint.url,
            lambda result: self._object(result),
            safety=Safety.CREATES_WORK,
            content=self._encode(body, asynchronous=False),
            headers=self._headers(False),
        )

    def generate_image(
        self, engine: str, request: ImageGenerationRequest | Mapping[str, Any]
    ) -> Call[ImageGenerationResponse]:
        """``POST /generate/<engine>`` (sdxl, sd, ssd, sd3, controlnet-sdxl, flux-schnell, flux-dev)."""
        name = engine.removeprefix("generate/")
        if image_engines().get(name, ("", ""))[1] != "ImageGenerationResponse":
            raise InputValidationError(
                f"{engine!r} is not an image engine "
                f"(known: {', '.join(self._engines('ImageGenerationResponse'))})",
                vendor=self.vendor,
            )
        call = self.infer(f"generate/{name}", request)
        return _reparse(call, "generate_image", self._model_parser(ImageGenerationResponse))

    def generate_video(
        self, request: VideoGenerationRequest | Mapping[str, Any]
    ) -> Call[VideoGenerationResponse]:
        """``POST /generate/svd``: a short video from a starting image."""
        call = self.infer("generate/svd", request)
        return _reparse(call, "generate_video", self._model_parser(VideoGenerationResponse))

    @staticmethod
    def _engines(response_schema: str) -> list[str]:
        return sorted(e for e, (_, r) in image_engines().items() if r == response_schema)

    @staticmethod
    def whisper_input(
        audio: bytes, *, task: str = "transcribe", language: str | None = "en"
    ) -> dict[str, Any]:
        """The body of a Whisper deployment (observed shape)."""
        body: dict[str, Any] = {"audio": base64.b64encode(audio).decode("ascii"), "task": task}
        if language:
            body["language"] = language
        return body

    def transcribe(
        self, deployment: str, audio: bytes, *, task: str = "transcribe", language: str | None = "en"
    ) -> Call[WhisperResponse]:
        """Synchronous transcription on a Whisper deployment."""
        call = self.infer(deployment, self.whisper_input(audio, task=task, language=language))
        return _reparse(call, "transcribe", self._model_parser(WhisperResponse))

    # -- asynchronous inference ----------------------------------------------------------------

    def infer_async(self, service: str, input: BaseModel | Mapping[str, Any]) -> Call[AsyncAccepted]:
        """The same inference with ``X-OctoAI-Async: 1``: answered at once with an id to poll."""
        endpoint = self.endpoint(service)
        body = self._body(endpoint, input)

        def parse(result: HttpResult) -> AsyncAccepted:
            accepted: AsyncAccepted = self.model(AsyncAccepted, self._object(result), result)
            if accepted.poll_url is not None:
                self._follow(accepted.poll_url, "poll_url", accepted.response_id)
            return accepted

        return Call(
            "infer_async",
            "POST",
            endpoint.url,
            parse,
            safety=Safety.CREATES_WORK,
            content=self._encode(body, asynchronous=True),
            headers=self._headers(True),
        )

    def poll(self, request_id_or_url: str) -> Call[PollStatus]:
        """``GET /v1/requests/{id}`` on the async host, or a ``poll_url`` the vendor returned."""
        request_id, url = self._id_and_url(request_id_or_url)
        target = self._follow(url, "poll_url", request_id) if url else self._poll_url(request_id)

        def parse(result: HttpResult) -> PollStatus:
            status: PollStatus = self.model(PollStatus, self._object(result, request_id), result, request_id)
            if status.response_url is not None:
                self._follow(status.response_url, "response_url", request_id)
            return status

        return Call(
            "poll", "GET", target, parse, request_id=request_id, on_error=self._poll_error(request_id)
        )

    def _poll_error(self, request_id: str) -> Callable[[HttpResult], EdgeInferError | None]:
        def on_error(result: HttpResult) -> EdgeInferError | None:
            if not 400 <= result.status < 500 or result.status in POLL_STATUSES_NOT_FAILURE:
                return None  # the shared mapping: 5xx transient, 401/403 auth, 429 rate limit
            try:
                message, _ = self.error_details(json.loads(result.content))
            except (ValueError, UnicodeDecodeError):
                message = None
            vendor_id = result.headers.get(self.request_id_headers[0])
            suffix = f" (vendor request id {vendor_id})" if vendor_id else ""
            # The shells can only raise on a non-2xx answer; this error is the failed job itself.
            return JobFailedError(
                f"polling answered HTTP {result.status}: {(message or 'no message')[:200]}{suffix}; OctoAI "
                "reports a failed request this way",
                vendor=self.vendor,
                http_status=result.status,
                request_id=request_id,
                operation="poll",
            )

        return on_error

    def get_response(self, response_id_or_url: str) -> Call[dict[str, Any]]:
        """``GET /v1/responses/{id}``: the body the synchronous call would have returned.

        A 404 here means the result is gone (kept 24 hours): :class:`ResultExpiredError`.
        """
        request_id, url = self._id_and_url(response_id_or_url)
        target = self._follow(url, "response_url", request_id) if url else self._response_url(request_id)

        def on_error(result: HttpResult) -> EdgeInferError | None:
            if result.status != 404:
                return None
            return ResultExpiredError(
                "the result no longer exists: OctoAI keeps asynchronous outputs for 24 hours",
                vendor=self.vendor,
                http_status=404,
                request_id=request_id,
                operation="get_response",
            )

        return Call(
            "get_response",
            "GET",
            target,
            lambda result: self._object(result, request_id),
            request_id=request_id,
            on_error=on_error,
        )

    # -- text ----------------------------------------------------------------------------------

    def chat_completions(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Call[ChatCompletion]:
        """OpenAI-compatible ``POST /v1/chat/completions`` on the text host (no streaming)."""
        if params.get("stream"):
            raise InputValidationError(
                "streaming chat completions are not supported here", vendor=self.vendor
            )
        if not messages:
            raise InputValidationError("messages must not be empty", vendor=self.vendor)
        body = {"model": model, "messages": [dict(m) for m in messages], **params}
        return Call(
            "chat_completions",
            "POST",
            self.text_base_url + CHAT_COMPLETIONS_PATH,
            self._model_parser(ChatCompletion),
            safety=Safety.CREATES_WORK,
            content=self._encode(body, asynchronous=False),
            headers=self._headers(False),
        )

    def list_text_models(self) -> Call[ModelList]:
        return Call(
            "list_text_models", "GET", self.text_base_url + MODELS_PATH, self._model_parser(ModelList)
        )

    # -- vendor-neutral surface ----------------------------------------------------------------

    @staticmethod
    def _is_text(service: str) -> bool:
        return service.strip().strip("/") in TEXT_CHAT_SERVICES

    @classmethod
    def takes_files_inline(cls, service: str) -> bool:
        """A Whisper deployment (any deployment whose name holds ``whisper``) takes its audio inline."""
        name = service.strip().strip("/")
        return bool(_DEPLOYMENT_NAME.match(name)) and WHISPER_DEPLOYMENT_MARK in name.lower()

    @classmethod
    def describe_file_inputs(cls) -> str | None:
        return (
            f"inline, base64-encoded, for Whisper deployments (service '{WHISPER_DEPLOYMENT_MARK}'), "
            f"at most {cls.max_inline_file_bytes:,} bytes per file"
        )

    @staticmethod
    def _inline_files_encoded(input: dict[str, Any]) -> dict[str, Any]:
        """Files given as :class:`InlineFile` values, as the base64 text a deployment's body carries."""
        return {
            key: base64.b64encode(value.content).decode("ascii") if isinstance(value, InlineFile) else value
            for key, value in input.items()
        }

    def answers_in_call(self, service: str) -> bool:
        """True for the text API (synchronous, with no status endpoint); images and deployments are
        submitted asynchronously and polled."""
        return self._is_text(service)

    def _chat_job(self, service: str, input: Mapping[str, Any]) -> Call[Job]:
        """The text API as an inference: the answer is the finished Job, its output the raw body."""
        body = dict(input)
        model, messages = body.pop("model", None), body.pop("messages", None)
        if not isinstance(model, str) or not model.strip():
            raise InputValidationError(
                f"{service} needs input['model'], a text model id (GET {MODELS_PATH} lists them)",
                vendor=self.vendor,
            )
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise InputValidationError(
                f"{service} needs input['messages'], a list of {{role, content}} objects", vendor=self.vendor
            )
        call = self.chat_completions(model, messages, **body)

        def parse(result: HttpResult) -> Job:
            completion: ChatCompletion = call.parse(result)  # validates the answer's shape
            return Job(
                vendor=self.vendor,
                request_id=completion.id,
                state=JobState.SUCCEEDED,
                vendor_state="completed",
                service=service,
                output=self._object(result),
                cost_usd=None,  # the text API states no cost: unknown, not free
            )

        return _reparse(call, "submit", parse)

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,  # OctoAI honours none: reattach relies on the task state store
    ) -> Call[Job]:
        """Asynchronous inference; the Job's ``request_id`` is OctoAI's ``response_id``.

        The text API (:data:`TEXT_CHAT_SERVICES`) answers in the call instead: the Job is finished and
        its ``request_id`` is the completion's ``id``.
        """
        if prediction is not None:
            raise InputValidationError(
                f"OctoAI has no predictions (got {prediction!r}); name the engine or deployment as the "
                "service",
                vendor=self.vendor,
            )
        if self._is_text(service):
            return self._chat_job(service, input)
        if any(isinstance(value, InlineFile) for value in input.values()):
            if not self.takes_files_inline(service):
                raise InputValidationError(
                    f"service {service!r} takes no file inline; only Whisper deployments do",
                    vendor=self.vendor,
                )
            input = self._inline_files_encoded(input)
        call = self.infer_async(service, input)

        def parse(result: HttpResult) -> Job:
            accepted = call.parse(result)
            # The 201 answer carries no status; the first poll says "pending".
            return self.to_job(PollStatus(status="pending"), accepted.response_id, service)

        return _reparse(call, "submit", parse)

    def status(self, request_id: str) -> Call[Job]:
        """The request's state. A 4xx poll answer (other than 401, 403, 408, 429) raises
        :class:`JobFailedError`: the shells cannot turn an error status into a value.
        """
        call = self.poll(request_id)
        return _reparse(call, "status", lambda result: self.to_job(call.parse(result), request_id))

    def cancel(self, request_id: str) -> None:
        """None: OctoAI's contract has no cancel endpoint, so a started inference runs to its end."""
        return None

    def fetch_output(self, job: Job) -> Call[Any] | None:
        """The finished job's result: ``job.result_url`` (checked against this connection) or its id.

        None for the text API: its answer came in the call and is ``job.output``.
        """
        if job.service is not None and self._is_text(job.service):
            return None
        call = self.get_response(job.result_url or job.request_id)
        schemas = image_engines().get(self.endpoint(job.service).engine or "") if job.service else None
        if schemas is None:
            return call
        model = (
            ImageGenerationResponse if schemas[1] == "ImageGenerationResponse" else VideoGenerationResponse
        )

        def parse(result: HttpResult) -> Any:
            body = call.parse(result)
            self.model(model, body, result, job.request_id)  # shape check; the raw JSON is what travels
            return body

        return _reparse(call, "fetch_output", parse)

    def console_url(self, request_id: str) -> str | None:
        """None: OctoAI has no page for one request."""
        return CONSOLE_URL

    # -- normalized view -----------------------------------------------------------------------

    def to_job(self, poll: PollStatus, request_id: str, service: str | None = None) -> Job:
        state = map_state(self.vendor, poll.status, STATES, request_id)
        error = None
        if state is JobState.FAILED:
            error = poll.message or "the inference failed without a message"
        return Job(
            vendor=self.vendor,
            request_id=request_id,
            state=state,
            vendor_state=poll.status,
            service=service,
            error=error,
            result_url=poll.response_url if state is JobState.SUCCEEDED else None,
        )


__all__ = [
    "ASYNC_BASE_URL",
    "DEPLOYMENT_URL_TEMPLATE",
    "IMAGE_BASE_URL",
    "MAX_ASYNC_BODY_BYTES",
    "TEXT_BASE_URL",
    "TEXT_CHAT_SERVICES",
    "AsyncAccepted",
    "ChatCompletion",
    "DecodedMedia",
    "ImageGenerationRequest",
    "ImageGenerationResponse",
    "ModelList",
    "OctoAIAPI",
    "PollStatus",
    "VideoGenerationRequest",
    "VideoGenerationResponse",
    "WhisperResponse",
    "decode_media",
    "describe_detail",
    "image_engines",
    "openapi_document",
    "schema_errors",
]
