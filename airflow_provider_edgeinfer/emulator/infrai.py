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

from collections.abc import Awaitable, Callable
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

#: A module-level handler: the account context, then the request.
Handler = Callable[[Infrai, Request], Awaitable[Response]]


async def native_not_found(request: Request) -> Response:
    raise _not_found(f"no native method at {request.url.path}")


async def core_not_found(request: Request) -> Response:
    raise _not_found(f"no route at {request.url.path}")


#: (path, handler, method) of the native methods, under ``/v1/ai``.
NATIVE_ROUTES: list[tuple[str, Handler, str]] = [
    ("/batch/submit", batches.batch_submit, "POST"),
    ("/batch/status/{batch_id}", batches.batch_status, "GET"),
    ("/batch/results/{batch_id}", batches.batch_results, "GET"),
    ("/batch/list", batches.batch_list, "GET"),
    ("/batch/cancel/{batch_id}", batches.batch_cancel, "POST"),
    ("/batch/export/{batch_id}", batches.batch_export, "POST"),
    ("/batch/set_retention/{batch_id}", batches.batch_set_retention, "POST"),
    ("/cost/estimate", native.cost_estimate, "POST"),
    ("/cost/compare", native.cost_compare, "POST"),
    ("/tokens/count", native.tokens_count, "POST"),
    ("/rerank", native.rerank, "POST"),
    ("/image/upscale", native.image_upscale, "POST"),
    ("/tts/voices", native.tts_voices, "GET"),
    ("/voice/session", native.voice_session, "POST"),
]
#: The OpenAI-compatible core, under ``/v1``.
CORE_ROUTES: list[tuple[str, Handler, str]] = [
    ("/chat/completions", core.chat, "POST"),
    ("/embeddings", core.embeddings, "POST"),
    ("/images/generations", core.images, "POST"),
    ("/audio/transcriptions", core.transcriptions, "POST"),
    ("/audio/speech", core.speech, "POST"),
    ("/models", core.models, "GET"),
]
ACCOUNT_ROUTES: list[tuple[str, Handler, str]] = [("/topup", native.account_topup, "POST")]
#: Every method a path that matches no route is answered 404 for (in its surface's error shape).
EVERY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _routes(api: Infrai, table: list[tuple[str, Handler, str]]) -> list[Route]:
    return [Route(path, partial(handler, api), methods=[method]) for path, handler, method in table]


def create_app(state: EmulatorState) -> ASGIApp:
    api = Infrai(state, Batches(state))
    native_routes = [
        *_routes(api, NATIVE_ROUTES),
        Route("/{path:path}", native_not_found, methods=EVERY_METHOD),
    ]
    core_routes = [*_routes(api, CORE_ROUTES), Route("/{path:path}", core_not_found, methods=EVERY_METHOD)]
    return Starlette(
        routes=[
            Mount("/v1/ai", app=vendor_app(state, VENDOR, native_error, native_routes)),
            Mount("/v1/account", app=vendor_app(state, VENDOR, native_error, _routes(api, ACCOUNT_ROUTES))),
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
