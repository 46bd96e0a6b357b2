"""Pieces every vendor module of the emulator shares: JSON answers, auth checks, fault injection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_edgeinfer.emulator.state import EmulatorState

#: Builds a vendor-shaped error answer: (status, message, code) -> Response.
ErrorFactory = Callable[[int, str, str], Response]


class HTTPError(Exception):
    """Raised inside a handler; the vendor module's error factory turns it into its error shape."""

    def __init__(
        self, status: int, message: str, code: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPError(400, "request body is not valid JSON", "INVALID_REQUEST") from None


def public_base(request: Request) -> str:
    """The URL prefix this vendor is served under, as the client reached it."""
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class FaultMiddleware:
    """Injects one vendor's faults: scripted first (in order), then by configured rates.

    - ``429``: refused before the handler runs, with ``Retry-After``;
    - ``5xx``: refused before the handler runs (503 carries ``Retry-After``);
    - ``slow``: the answer is delayed;
    - ``drop``: the handler runs (work may be created) but the connection closes mid-answer;
    - ``hold`` (scripted only): the handler runs (work is created) and its answer is held back for
      ``seconds`` (default 300): a client killed meanwhile never learns the outcome of its call;
    - ``malformed``: the handler runs but the body is cut into invalid JSON.
    """

    def __init__(self, app: ASGIApp, state: EmulatorState, vendor: str, errors: ErrorFactory) -> None:
        self.app = app
        self.state = state
        self.vendor = vendor
        self.errors = errors

    def _pick(self, path: str, method: str) -> dict[str, Any] | None:
        state = self.state
        with state.lock:
            queue = state.scripted.get(self.vendor) or []
            for i, fault in enumerate(queue):
                if fault.get("path", "") in path and fault.get("method", method).upper() == method:
                    return queue.pop(i)
        f = state.faults[self.vendor]
        roll = state.rng.random()
        for kind, rate in (
            ("429", f.rate_429),
            ("5xx", f.rate_5xx),
            ("drop", f.rate_drop),
            ("malformed", f.rate_malformed),
            ("slow", f.rate_slow),
        ):
            if roll < rate:
                if kind in ("drop", "malformed") and not f.mangles(method):
                    return None
                return {"kind": kind}
            roll -= rate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_"):
            await self.app(scope, receive, send)
            return
        with self.state.lock:
            self.state.in_flight += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self._pick(scope["path"], scope["method"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        kind = str(fault["kind"])
        with self.state.lock:
            self.state.faults_injected[f"{self.vendor}.{kind}"] += 1
        settings = self.state.faults[self.vendor]
        if kind in ("429", "5xx"):
            status = 429 if kind == "429" else int(fault.get("status", 503))
            response = self.errors(
                status, "injected fault: try again later", "RATE_LIMITED" if status == 429 else ""
            )
            if status in (429, 503):
                response.headers["Retry-After"] = str(fault.get("retry_after", settings.retry_after))
            await response(scope, receive, send)
            return
        if kind == "slow":
            await asyncio.sleep(float(fault.get("seconds", settings.slow_seconds)))
            await self.app(scope, receive, send)
            return
        if kind == "hold":
            await self._held(float(fault.get("seconds", 300.0)), scope, receive, send)
            return
        await self._mangled(kind, scope, receive, send)

    async def _held(self, seconds: float, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        await asyncio.sleep(seconds)
        for message in messages:
            await send(message)

    async def _mangled(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if kind == "malformed":
            broken = body[: max(1, len(body) // 2)] or b"{"
            headers.append((b"content-length", str(len(broken)).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": broken})
            return
        # drop: promise more bytes than are sent; the server closes the connection mid-answer.
        headers.append((b"content-length", str(len(body) + 1024).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise ConnectionAbortedError("injected fault: connection dropped")


def vendor_app(state: EmulatorState, vendor: str, errors: ErrorFactory, routes: list[Any]) -> ASGIApp:
    from starlette.applications import Starlette

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPError):
            response = errors(exc.status, exc.message, exc.code)
            response.headers.update(exc.headers)  # e.g. Retry-After
            return response
        return errors(500, "emulator error", "INTERNAL")

    app = Starlette(routes=routes, exception_handlers={HTTPError: on_error})
    return FaultMiddleware(app, state, vendor, errors)


def empty(status: int = 204) -> Response:
    return Response(status_code=status)
