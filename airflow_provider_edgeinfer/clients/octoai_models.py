"""OctoAI's request and answer shapes (contract examples: ``tests/contract/octoai``).

Request bodies forbid unknown fields (a typo is refused before anything is billed); answers keep
unknown fields, since vendor objects grow.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_edgeinfer.clients.openai_models import Lenient as _Lenient

VENDOR = "octoai"


class ImageGenerationRequest(BaseModel):
    """Typed builder for an image-engine body; unset fields take the vendor's defaults.

    Limits (``num_images`` 1..16, ``steps`` 1..200 ...) are checked against the OpenAPI file when
    the request is built into a call, not here, so the schema stays the one authority.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: str
    negative_prompt: str | None = None
    prompt_2: str | None = None
    negative_prompt_2: str | None = None
    width: int | None = None
    height: int | None = None
    num_images: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    seed: int | list[int | None] | None = None
    image_encoding: str | None = None
    style_preset: str | None = None
    checkpoint: str | None = None
    vae: str | None = None
    loras: dict[str, float] | None = None
    textual_inversions: dict[str, str] | None = None
    transfer_images: dict[str, list[str]] | None = None
    clip_skip: int | None = None
    use_refiner: bool | None = None
    high_noise_frac: float | None = None
    init_image: str | None = Field(default=None, repr=False)
    mask_image: str | None = Field(default=None, repr=False)
    strength: float | None = None
    outpainting: bool | None = None
    inpaint_full_res: bool | None = None
    inpaint_full_res_padding: int | None = None
    controlnet: str | None = None
    controlnet_image: str | None = Field(default=None, repr=False)
    controlnet_conditioning_scale: float | None = None
    controlnet_early_stop: float | None = None
    controlnet_preprocess: bool | None = None
    log_prompt: bool | None = None


class VideoGenerationRequest(BaseModel):
    """Body of ``generate/svd``: a starting image (base64) and motion settings."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(repr=False)
    width: int | None = None
    height: int | None = None
    num_videos: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    fps: int | None = None
    motion_scale: float | None = None
    noise_aug_strength: float | None = None
    constant_rate_factor: int | None = None
    seed: int | list[int | None] | None = None


class _Generated(_Lenient):
    """What OctoAI states of each image or video it generated."""

    removed_for_safety: bool = False
    seed: int | None = None
    safety_score: float | None = None


class ImageGeneration(_Generated):
    #: None when the safety filter removed the image (documented: a result, not an error).
    image_b64: str | None = Field(repr=False)


class ImageGenerationResponse(_Lenient):
    images: list[ImageGeneration]
    prediction_time_ms: float | None = None


class VideoGeneration(_Generated):
    video: str | None = Field(repr=False)


class VideoGenerationResponse(_Lenient):
    videos: list[VideoGeneration]
    prediction_time_ms: float | None = None


class WhisperSegment(_Lenient):
    text: str
    start: float | None = None
    end: float | None = None


class WhisperResult(_Lenient):
    segments: list[WhisperSegment]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class WhisperResponse(_Lenient):
    response: WhisperResult


class AsyncAccepted(_Lenient):
    """The answer to an asynchronous inference (documented)."""

    response_id: str
    poll_url: str | None = None


class PollStatus(_Lenient):
    status: str
    response_url: str | None = None
    #: Why a failed inference failed (assumed shape: ``{"status": "failed", "message": ...}``).
    message: str | None = None
