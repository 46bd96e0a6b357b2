"""infrai, as its vendor contract describes it: the OpenAI-compatible core and the native ``/v1/ai``.

Two sub-apps share one state because the two surfaces answer errors differently: the core speaks
OpenAI's ``{"error": {...}}`` (so the official SDK maps them), the native methods the
``{ok, data, error, metadata}`` envelope.

Idempotency is honoured everywhere a key may travel (``Idempotency-Key`` header or body
``idempotency_key``): an identical retry replays the first answer byte for byte and creates nothing;
the same key with a different request is a 409 CONFLICT. ``state.record_submission`` is called once
per distinct creation, so "submitted exactly once" is ``state.submissions["infrai"][key] == 1``, and a
blind duplicate without a key shows up as a content identity counted twi

The routes are module-level handlers by concern, each taking the account's
:class:`~airflow_provider_edgeinfer.emulator.infrai_common.Infrai` context: the OpenAI-compatible core
(``infrai_core``), native batches (``infrai_batches``) and the other native methods
(``infrai_native``); ``infrai_common`` holds the contract's tables and the steps every route shares.
"""

from __future__ import annotations

from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from airflow_provider_edgeinfer.emulator import infrai_batches as batches
from airflow_provider_edgeinfer.emulator import infrai_core as core
from airflow_provider_edgeinfer.emulator import infrai_native as native
from airflow_provider_edgeinfer.emulator.common import vendor_app
from airflow_provider_edgeinfer.emulator.infrai_batches import Batches
from airflow_provider_edgeinfer.emulator.infrai_common import (
    BATCHES_TABLE,
    CANCEL_SECONDS,
    CHAT_MODELS,
    CONFIG_TABLE,
    DAY_SECONDS,
    DEFAULT_EMBEDDING_DIMENSIONS,
    MAX_IMAGE_SIDE,
    REPLAYS_TABLE,
    VENDOR,
    VOICES,
    Infrai,
    _not_found,
    core_error,
    embedding_dimensions,
    estimate_tokens,
    native_error,
)
from airflow_provider_edgeinfer.emulator.state import EmulatorState


async def native_not_found(request: Request) -> Response:
    raise _not_found(f"no native method at {request.url.path}")


async def core_not_found(request: Request) -> Response:
    raise _not_found(f"no route at {request.url.path}")


def create_app(state: EmulatorState) -> ASGIApp:
    api = Infrai(state, Batches(state))
    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    native_routes = [
        Route("/batch/submit", partial(batches.batch_submit, api), methods=["POST"]),
        Route("/batch/status/{batch_id}", partial(batches.batch_status, api), methods=["GET"]),
        Route("/batch/results/{batch_id}", partial(batches.batch_results, api), methods=["GET"]),
        Route("/batch/list", partial(batches.batch_list, api), methods=["GET"]),
        Route("/batch/cancel/{batch_id}", partial(batches.batch_cancel, api), methods=["POST"]),
        Route("/batch/export/{batch_id}", partial(batches.batch_export, api), methods=["POST"]),
        Route("/batch/set_retention/{batch_id}", partial(batches.batch_set_retention, api), methods=["POST"]),
        Route("/cost/estimate", partial(native.cost_estimate, api), methods=["POST"]),
        Route("/cost/compare", partial(native.cost_compare, api), methods=["POST"]),
        Route("/tokens/count", partial(native.tokens_count, api), methods=["POST"]),
        Route("/rerank", partial(native.rerank, api), methods=["POST"]),
        Route("/image/upscale", partial(native.image_upscale, api), methods=["POST"]),
        Route("/tts/voices", partial(native.tts_voices, api), methods=["GET"]),
        Route("/voice/session", partial(native.voice_session, api), methods=["POST"]),
        Route("/{path:path}", native_not_found, methods=every),
    ]
    core_routes = [
        Route("/chat/completions", partial(core.chat, api), methods=["POST"]),
        Route("/embeddings", partial(core.embeddings, api), methods=["POST"]),
        Route("/images/generations", partial(core.images, api), methods=["POST"]),
        Route("/audio/transcriptions", partial(core.transcriptions, api), methods=["POST"]),
        Route("/audio/speech", partial(core.speech, api), methods=["POST"]),
        Route("/models", partial(core.models, api), methods=["GET"]),
        Route("/{path:path}", core_not_found, methods=every),
    ]
    return Starlette(
        routes=[
            Mount("/v1/ai", app=vendor_app(state, VENDOR, native_error, native_routes)),
            Mount(
                "/v1/account",
                app=vendor_app(
                    state,
                    VENDOR,
                    native_error,
                    [Route("/topup", partial(native.account_topup, api), methods=["POST"])],
                ),
            ),
            Mount("/v1", app=vendor_app(state, VENDOR, core_error, core_routes)),
        ]
    )


__all__ = [
    "BATCHES_TABLE",
    "CANCEL_SECONDS",
    "CHAT_MODELS",
    "CONFIG_TABLE",
    "DAY_SECONDS",
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "MAX_IMAGE_SIDE",
    "REPLAYS_TABLE",
    "VENDOR",
    "VOICES",
    "create_app",
    "embedding_dimensions",
    "estimate_tokens",
]
