"""infrai's other native methods in the emulator: cost estimates, tokens, rerank, upscale, voices."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.infrai_common import (
    BATCH_DISCOUNT,
    CHAT_MODELS,
    DEFAULT_CHAT_MODEL,
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    IMAGE_PRICE_USD,
    MAX_UPSCALED_SIDE,
    PAGED_QUERY,
    RERANK_PRICE_USD,
    VOICE_IDS,
    VOICES,
    Infrai,
    _chat_usd,
    _invalid,
    _iso,
    _media_id,
    _messages_text,
    _ok,
    _page,
    _png_size,
    estimate_tokens,
)
from airflow_provider_edgeinfer.emulator.state import new_id


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
    return estimate_tokens(_messages_text(messages)) + (estimate_tokens(json.dumps(tools)) if tools else 0)


async def cost_estimate(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "cost.estimate")
    return _ok(estimate(body, str(body.get("model") or DEFAULT_CHAT_MODEL)))


async def cost_compare(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "cost.compare")
    wanted = body.get("models") or list(CHAT_MODELS)
    if not isinstance(wanted, list) or not all(isinstance(m, str) for m in wanted):
        raise _invalid("'models' must be an array of model ids")
    return _ok({"estimates": [estimate(body, m) for m in wanted]})


async def tokens_count(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "tokens.count")
    model = str(body.get("model") or DEFAULT_CHAT_MODEL)
    return _ok({"prompt_tokens": _prompt_tokens(body), "model": model})


async def rerank(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "rerank")
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
            round(len(words & set(re.findall(r"\w+", str(text).lower()))) / len(words), 6) if words else 0.0,
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


async def image_upscale(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "image.upscale")

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
            data = api.state.read_blob(blob) if blob else None
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
        api.charge(IMAGE_PRICE_USD / 2)
        encoded = (
            f"{api.base(request)}/_media/{api.state.save_media(out, '.png')}"
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

    return api.once(request, "image.upscale", body, produce)


async def tts_voices(api: Infrai, request: Request) -> Response:
    await api.admit(request, "tts.voices", body=False, query=PAGED_QUERY)
    chunk, next_cursor = _page(request, VOICES)
    data: dict[str, Any] = {"voices": chunk, "total_count": len(VOICES)}
    if next_cursor is not None:
        data["next_cursor"] = next_cursor
    return _ok(data)


async def voice_session(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "voice.session")
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


async def account_topup(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "account.topup")
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
