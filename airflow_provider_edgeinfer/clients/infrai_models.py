"""Request and answer shapes of infrai (contract examples: ``tests/contract/infrai``).

The OpenAI-compatible core uses plain OpenAI bodies; the native ``/v1/ai`` methods wrap their
answer in ``{ok, data, error, metadata}``, kept here as :class:`Enveloped` so the vendor's cost and
request id stay reachable next to the data. Shapes the contract marks "assumed" carry a comment
and tolerate the obvious alternatives, so a correction stays local.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_provider_edgeinfer.clients.openai_models import Lenient as _Lenient
from airflow_provider_edgeinfer.clients.openai_models import Usage

D = TypeVar("D")


class _Request(BaseModel):
    """Request bodies: OpenAI-compatible routes take many optional fields, so extras pass through."""

    model_config = ConfigDict(extra="allow")

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# -- envelope ---------------------------------------------------------------------------------


class EnvelopeMetadata(_Lenient):
    cost_usd: float | None = None
    latency_ms: float | None = None
    vendor: str | None = None
    cache_hit: bool | None = None
    request_id: str | None = None


class Enveloped(BaseModel, Generic[D]):
    """A native answer: ``data`` plus the envelope's ``metadata`` (cost, request id, routed vendor)."""

    data: D
    metadata: EnvelopeMetadata = Field(default_factory=EnvelopeMetadata)


# -- OpenAI-compatible core: requests ---------------------------------------------------------


class ChatCompletionRequest(_Request):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)


class EmbeddingRequest(_Request):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = None
    #: Left unset: the answer then carries float lists (the SDK's base64 default is decoded too).
    encoding_format: Literal["float", "base64"] | None = None


class ImageGenerationRequest(_Request):
    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None


class SpeechRequest(_Request):
    model: str
    input: str = Field(min_length=1)
    voice: str
    response_format: str | None = None
    speed: float | None = None


class TranscriptionRequest(_Request):
    """The form fields sent next to the audio file (multipart)."""

    model: str
    language: str | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "verbose_json"] | None = None
    temperature: float | None = None


# -- OpenAI-compatible core: answers ----------------------------------------------------------


class EmbeddingItem(_Lenient):
    index: int
    embedding: list[float] | str
    object: str = "embedding"

    @property
    def vector(self) -> list[float]:
        """The vector, decoding the base64 little-endian float32 form if that is what came back."""
        if isinstance(self.embedding, list):
            return self.embedding
        raw = base64.b64decode(self.embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class EmbeddingList(_Lenient):
    object: str = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage | None = None


class GeneratedImage(_Lenient):
    b64_json: str | None = Field(default=None, repr=False)
    url: str | None = Field(default=None, repr=False)  # may be a presigned (bearer) URL
    revised_prompt: str | None = None


class ImagesResponse(_Lenient):
    created: int
    data: list[GeneratedImage]


class Transcription(_Lenient):
    text: str
    language: str | None = None
    duration: float | None = None


@dataclass(frozen=True)
class SpeechAudio:
    """The binary answer of ``/v1/audio/speech``: the bytes and what they are."""

    content: bytes = field(repr=False)
    content_type: str

    @property
    def size(self) -> int:
        return len(self.content)


# -- native: batches --------------------------------------------------------------------------


class BatchRequestItem(BaseModel):
    """One entry of a batch: ``capability`` is a core route name, ``body`` that route's OpenAI body."""

    model_config = ConfigDict(extra="forbid")

    capability: str
    body: dict[str, Any]
    custom_id: str | None = None


class BatchSubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[BatchRequestItem] = Field(min_length=1)
    batch_timeout: str | None = Field(default=None, pattern=r"^\d+[smhd]$")
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


class BatchSubmitResult(_Lenient):
    batch_id: str
    state: str
    total_count: int
    estimated_eta: Any = None
    estimated_cost_usd: float | None = None


class BatchStatus(_Lenient):
    batch_id: str
    state: str
    progress: float = 0.0
    total_count: int = 0
    completed_count: int = 0
    failed_count: int = 0
    created_at: str | float | None = None
    total_cost_usd: float | None = None


class ItemError(_Lenient):
    code: str | None = None
    message: str | None = None


class BatchResultItem(_Lenient):
    """One result; the item shape is assumed (contract): ``state`` is "succeeded" or "failed"."""

    index: int
    custom_id: str | None = None
    state: str
    response: Any = None
    error: ItemError | None = None
    cost_usd: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.state in ITEM_SUCCESS_STATES


#: Item states that mean success; "completed" is the obvious alternative spelling (assumed shape).
ITEM_SUCCESS_STATES = frozenset({"succeeded", "completed"})


class BatchResultsPage(_Lenient):
    items: list[BatchResultItem]
    total_count: int | None = None
    next_cursor: str | None = None
    download_url: str | None = Field(default=None, repr=False)


class BatchListPage(_Lenient):
    batches: list[BatchStatus]
    total_count: int | None = None
    next_cursor: str | None = None


class ExportJob(_Lenient):
    export_id: str
    state: str
    format: str | None = None
    download_url: str | None = Field(default=None, repr=False)  # may be presigned
    expires_at: str | float | None = None
    created_at: str | float | None = None


# -- native: cost, tokens, rerank -------------------------------------------------------------


class CostBreakdown(_Lenient):
    """Assumed shape (contract): ``{input_usd, output_usd, total_usd}``."""

    input_usd: float
    output_usd: float
    total_usd: float

    @model_validator(mode="before")
    @classmethod
    def _alternatives(cls, value: Any) -> Any:
        # The obvious alternative spelling {input, output, total} is accepted too.
        if isinstance(value, dict) and "total_usd" not in value and "total" in value:
            return {
                "input_usd": value.get("input", 0.0),
                "output_usd": value.get("output", 0.0),
                "total_usd": value["total"],
                **value,
            }
        return value


class CostEstimate(_Lenient):
    model: str
    vendor: str | None = None
    vendor_region: str | None = None
    prompt_tokens: int
    expected_output_tokens: int = 0
    breakdown: CostBreakdown


class CostComparison(_Lenient):
    estimates: list[CostEstimate]

    def cheapest(self) -> CostEstimate | None:
        return min(self.estimates, key=lambda e: e.breakdown.total_usd, default=None)


class TokenCount(_Lenient):
    prompt_tokens: int
    model: str | None = None


class RerankResult(_Lenient):
    index: int
    relevance_score: float


class RerankResponse(_Lenient):
    results: list[RerankResult]


# -- native: images, voices -------------------------------------------------------------------


class ImageSize(_Lenient):
    """Assumed shape (contract): ``{width, height}``; ``"WxH"`` and ``[w, h]`` are accepted too."""

    width: int
    height: int

    @model_validator(mode="before")
    @classmethod
    def _alternatives(cls, value: Any) -> Any:
        if isinstance(value, str) and "x" in value.lower():
            width, _, height = value.lower().partition("x")
            return {"width": width.strip(), "height": height.strip()}
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"width": value[0], "height": value[1]}
        return value


class UpscaleResult(_Lenient):
    image: str = Field(repr=False)  # base64 or a URL, like the input
    original_size: ImageSize
    new_size: ImageSize


class Voice(_Lenient):
    """Assumed shape (contract): ``{id, name, language, gender}``; ``voice_id`` is accepted for ``id``."""

    id: str
    name: str | None = None
    language: str | None = None
    gender: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _alternatives(cls, value: Any) -> Any:
        if isinstance(value, dict) and "id" not in value and "voice_id" in value:
            return {**value, "id": value["voice_id"]}
        return value


class VoicePage(_Lenient):
    voices: list[Voice]
    total_count: int | None = None
    next_cursor: str | None = None


class VoiceSession(_Lenient):
    """Assumed shape (contract): ``{token, expires_at, url}``."""

    token: str = Field(repr=False)  # a bearer credential for the realtime session
    expires_at: str | float
    url: str


class Topup(_Lenient):
    """Assumed shape: ``{checkout_url, amount_usd?, expires_at?}`` (the seed only names the call)."""

    checkout_url: str = Field(repr=False)  # a payment session: not for logs
    amount_usd: float | None = None
    expires_at: str | float | None = None


__all__ = [
    "ITEM_SUCCESS_STATES",
    "BatchListPage",
    "BatchRequestItem",
    "BatchResultItem",
    "BatchResultsPage",
    "BatchStatus",
    "BatchSubmitRequest",
    "BatchSubmitResult",
    "ChatCompletionRequest",
    "CostBreakdown",
    "CostComparison",
    "CostEstimate",
    "EmbeddingItem",
    "EmbeddingList",
    "EmbeddingRequest",
    "EnvelopeMetadata",
    "Enveloped",
    "ExportJob",
    "GeneratedImage",
    "ImageGenerationRequest",
    "ImageSize",
    "ImagesResponse",
    "ItemError",
    "RerankResponse",
    "RerankResult",
    "SpeechAudio",
    "SpeechRequest",
    "TokenCount",
    "Topup",
    "Transcription",
    "TranscriptionRequest",
    "Voice",
    "VoicePage",
    "VoiceSession",
]
