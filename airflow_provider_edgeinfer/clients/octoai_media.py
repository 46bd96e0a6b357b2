"""Generated images and videos of an OctoAI result, decoded to bytes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from airflow_provider_edgeinfer.clients.octoai_models import (
    VENDOR,
    ImageGenerationResponse,
    VideoGenerationResponse,
)
from airflow_provider_edgeinfer.exceptions import UnexpectedResponseError


@dataclass(frozen=True)
class DecodedMedia:
    """One generated image or video, decoded: ``data`` is None when it was removed for safety."""

    index: int
    data: bytes | None
    removed_for_safety: bool
    seed: int | None

    def __repr__(self) -> str:
        size = "removed" if self.data is None else f"{len(self.data)} bytes"
        return f"DecodedMedia(index={self.index}, {size}, seed={self.seed})"


def decode_media(
    result: ImageGenerationResponse | VideoGenerationResponse | Mapping[str, Any],
) -> list[DecodedMedia]:
    """Every image (or svd video) of a result as bytes; removed ones are reported, not dropped.

    Accepts the parsed model or the raw JSON (what ``fetch_output`` returns).
    """
    if isinstance(result, Mapping):
        model = VideoGenerationResponse if "videos" in result else ImageGenerationResponse
        try:
            result = model.model_validate(result)
        except ValidationError as exc:
            raise UnexpectedResponseError(
                f"not an image or video result: {exc.error_count()} problem(s) with {model.__name__}",
                vendor=VENDOR,
            ) from None
    items: list[tuple[str | None, bool, int | None]]
    if isinstance(result, VideoGenerationResponse):
        items = [(v.video, v.removed_for_safety, v.seed) for v in result.videos]
    else:
        items = [(i.image_b64, i.removed_for_safety, i.seed) for i in result.images]
    out = []
    for index, (encoded, removed, seed) in enumerate(items):
        data = None
        if encoded is not None and not removed:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise UnexpectedResponseError(
                    f"output {index} is not valid base64 ({len(encoded)} characters)", vendor=VENDOR
                ) from None
        out.append(DecodedMedia(index, data, removed or encoded is None, seed))
    return out
