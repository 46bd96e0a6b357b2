"""The emulator's ASGI app: the four vendors under path prefixes, uploads, media and control.

Layout (``BASE`` is e.g. ``http://127.0.0.1:8080``):

- ``BASE/theta``, ``BASE/octoai``, ``BASE/infrai``, ``BASE/omnitensor``: the vendor APIs, each the
  "host" of its Airflow connection;
- ``BASE/_uploads/{id}``: presigned PUT targets; ``BASE/_media/{id}``: generated images and audio;
- ``BASE/_emulator/...``: control (faults, clock, timing, counters, reset, connections).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from airflow_provider_edgeinfer.emulator.state import UPLOAD_FAULTS, UPLOADS, VENDORS, EmulatorState, Timing

CONNECTION_EXTRAS: dict[str, dict[str, Any]] = {
    "theta": {"project_id": "prj_emulator"},
    "octoai": {},
    "infrai": {},
    "omnitensor": {},
}


def connections(base: str, state: EmulatorState) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values that point the four default connections at this emulator."""
    out = {}
    for vendor in VENDORS:
        extra = dict(CONNECTION_EXTRAS[vendor])
        if vendor == "omnitensor":
            extra["secret"] = state.omnitensor_secret
        conn = {
            "conn_type": f"edgeinfer_{vendor}",
            "host": f"{base}/{vendor}",
            "password": state.keys[vendor],
            "extra": extra,
        }
        out[f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"] = json.dumps(conn)
    return out


def _vendors(body: dict[str, Any]) -> list[str]:
    vendor = body.get("vendor", "*")
    if vendor == "*":
        return list(VENDORS)
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}")
    return [vendor]


def _json_only(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A control POST must say it is JSON: a cross-site HTML form can only send form or text
    types, so it is refused (415) before it can inject faults, move the clock or reset counters."""

    async def guarded(request: Request) -> Response:
        if request.method == "POST":
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                return JSONResponse(
                    {"error": "control requests must be sent as Content-Type: application/json"},
                    status_code=415,
                )
            try:
                return await handler(request)
            except json.JSONDecodeError as exc:
                return JSONResponse({"error": f"the body is not valid JSON: {exc}"}, status_code=400)
        return await handler(request)

    return guarded


def bound_base(request: Request) -> str:
    """This server's own address (the socket it listens on), never the client's Host header."""
    host, port = request.scope["server"]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def control_routes(state: EmulatorState) -> list[Route]:
    async def counters(request: Request) -> Response:
        return JSONResponse(state.snapshot(brief=request.query_params.get("brief") == "1"))

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            if body.get("vendor") == UPLOADS:
                # Presigned uploads belong to no vendor and take scripted faults only.
                script = [dict(f) for f in body.get("script", [])]
                bad = [str(f.get("kind")) for f in script if f.get("kind") not in UPLOAD_FAULTS]
                if bad or set(body) - {"vendor", "script"}:
                    return JSONResponse(
                        {"error": f"uploads take a script of {', '.join(UPLOAD_FAULTS)} faults only"},
                        status_code=400,
                    )
                with state.lock:
                    state.scripted[UPLOADS].extend(script)
                return JSONResponse({UPLOADS: state.scripted[UPLOADS]})
            try:
                targets = _vendors(body)
                rates = {k: v for k, v in body.items() if k not in ("vendor", "script")}
                for vendor in targets:
                    state.faults[vendor].update(rates)
                    if "script" in body:
                        with state.lock:
                            state.scripted[vendor].extend(dict(f) for f in body["script"])
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state.settings()["faults"])

    async def clock(request: Request) -> Response:
        body = await request.json()
        state.clock.advance(float(body.get("advance", 0)))
        return JSONResponse({"clock": state.clock.now()})

    async def timing(request: Request) -> Response:
        body = await request.json()
        try:
            for vendor in _vendors(body):
                current = state.timing[vendor]
                state.timing[vendor] = Timing(
                    queued=float(body.get("queued", current.queued)),
                    running=float(body.get("running", current.running)),
                    running_max=body.get("running_max", current.running_max),
                )
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state.settings()["timing"])

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            for key in ("octoai_retention_seconds", "omnitensor_token_ttl", "presign_ttl"):
                if key in body:
                    setattr(state, key, float(body[key]))
        return JSONResponse(state.settings())

    async def conns(request: Request) -> Response:
        lines = [f"export {k}='{v}'" for k, v in connections(bound_base(request), state).items()]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def drop_uploads(request: Request) -> Response:
        return JSONResponse({"dropped": state.drop_uploads()})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "vendors": list(VENDORS)})

    return [
        Route("/_emulator/health", health),
        Route("/_emulator/counters", counters),
        Route("/_emulator/reset", _json_only(reset), methods=["POST"]),
        Route("/_emulator/faults", _json_only(faults), methods=["GET", "POST"]),
        Route("/_emulator/clock", _json_only(clock), methods=["POST"]),
        Route("/_emulator/timing", _json_only(timing), methods=["POST"]),
        Route("/_emulator/settings", _json_only(settings), methods=["GET", "POST"]),
        Route("/_emulator/connections", conns),
        Route("/_emulator/uploads/drop", _json_only(drop_uploads), methods=["POST"]),
    ]


class _DroppedUpload(Response):
    """Starts an answer, sends part of it, then cuts the connection (an upload "drop" fault)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ConnectionAbortedError("injected fault: upload connection dropped")


async def _drain(request: Request) -> None:
    """Read and discard a refused body: answering with it unread makes the server reset the
    connection, and the client would see a dropped connection instead of the answer."""
    with contextlib.suppress(ClientDisconnect):
        async for _ in request.stream():
            pass


def storage_routes(state: EmulatorState) -> list[Route]:
    async def upload(request: Request) -> Response:
        blob_id = request.path_params["blob_id"]
        fault = state.next_upload_fault() or {}
        kind = fault.get("kind")
        problem = state.check_signature(
            blob_id, request.query_params.get("expires"), request.query_params.get("signature")
        )
        if kind == "expire" and not problem:
            problem = "Request has expired"
        # As S3 answers a presigned PUT that also carries a key ("Only one auth mechanism allowed")
        # or a body without its length (411 MissingContentLength; chunked bodies are refused).
        if "authorization" in request.headers:
            await _drain(request)
            return PlainTextResponse("InvalidArgument: Only one auth mechanism allowed", status_code=400)
        if "content-length" not in request.headers:
            await _drain(request)
            return PlainTextResponse("MissingContentLength", status_code=411)
        if problem:
            await _drain(request)
            return PlainTextResponse(f"AccessDenied: {problem}", status_code=403)
        if kind == "5xx":
            await _drain(request)
            status = int(fault.get("status", 503))
            retry = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
            return PlainTextResponse("ServiceUnavailable: injected fault", status_code=status, headers=retry)
        cut_after = int(fault.get("after_bytes", 1)) if kind == "drop" else None
        expected = request.headers.get("content-length")
        digest = hashlib.sha256()
        size = 0
        path = state.blob_path(blob_id)
        # Streamed to local disk chunk by chunk (uploads may be gigabytes); a thread hop per chunk
        # would cost more than the write.
        try:
            with open(path, "wb") as out:  # noqa: ASYNC230
                async for chunk in request.stream():
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    if cut_after is not None and size >= cut_after:
                        break
        except ClientDisconnect:
            path.unlink(missing_ok=True)
            return Response(status_code=400)
        if cut_after is not None:
            path.unlink(missing_ok=True)
            return _DroppedUpload()
        if expected is not None and int(expected) != size:
            path.unlink(missing_ok=True)
            return PlainTextResponse(f"IncompleteBody: got {size} of {expected} bytes", status_code=400)
        state.store_blob(blob_id, size, digest.hexdigest())
        state.count("storage", "put")
        return Response(status_code=200, headers={"ETag": f'"{digest.hexdigest()[:32]}"'})

    async def media(request: Request) -> Response:
        blob = state.blobs.get(request.path_params["blob_id"])
        if blob is None:
            return PlainTextResponse("NoSuchKey", status_code=404)
        state.count("storage", "get")
        return FileResponse(blob.path)

    return [
        Route("/_uploads/{blob_id}", upload, methods=["PUT"]),
        Route("/_media/{blob_id}", media, methods=["GET"]),
    ]


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The whole emulator as one ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    from airflow_provider_edgeinfer.emulator import infrai, octoai, omnitensor, theta

    state = state or EmulatorState()
    routes: list[Any] = [*control_routes(state), *storage_routes(state)]
    for name, module in (
        ("theta", theta),
        ("octoai", octoai),
        ("infrai", infrai),
        ("omnitensor", omnitensor),
    ):
        routes.append(Mount(f"/{name}", app=module.create_app(state)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = state
    return app
