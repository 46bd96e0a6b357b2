"""The fifth vendor's API, faked: runs submitted, polled until done, and stopped.

``POST /v1/runs`` ``{"model", "input"}`` answers 202 ``{"run": {...}}``; ``GET /v1/runs/{id}``
answers the run, which advances one step per read (``pending`` -> ``working`` -> ``done``, or
``broken`` when the input asks ``{"fail": true}``); ``POST /v1/runs/{id}/stop`` stops it. Every
call needs ``Authorization: Bearer <key>``. Served on loopback only, in a background thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = "fifth-test-key"
#: Reads after which a run is done (pending, working, then done).
STEPS = ("pending", "working")


@dataclass
class Run:
    id: str
    model: str
    input: dict[str, Any]
    reads: int = 0
    stopped: bool = False

    def status(self) -> str:
        if self.stopped:
            return "stopped"
        if self.reads < len(STEPS):
            return STEPS[self.reads]
        return "broken" if self.input.get("fail") else "done"

    def view(self) -> dict[str, Any]:
        status = self.status()
        out: dict[str, Any] = {"id": self.id, "model": self.model, "status": status}
        if status == "done":
            out["result"] = {"model": self.model, "echo": self.input}
            out["price_usd"] = 0.001
        if status == "broken":
            out["failure"] = "the model refused this input"
        return out


@dataclass
class FakeVendor:
    runs: dict[str, Run] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/runs", self.submit, methods=["POST"]),
                Route("/v1/runs/{run_id}", self.read, methods=["GET"]),
                Route("/v1/runs/{run_id}/stop", self.stop, methods=["POST"]),
            ]
        )

    @staticmethod
    def _refused(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"message": "bad key"}, status_code=401)
        return None

    async def submit(self, request: Request) -> JSONResponse:
        self.calls["submit"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        if not isinstance(body.get("input"), dict) or not body.get("model"):
            return JSONResponse({"message": "model and input are required"}, status_code=422)
        with self._lock:
            run = Run(f"run_{next(self._ids)}", str(body["model"]), body["input"])
            self.runs[run.id] = run
        return JSONResponse({"run": run.view()}, status_code=202)

    def _run(self, request: Request) -> Run | None:
        return self.runs.get(request.path_params["run_id"])

    async def read(self, request: Request) -> JSONResponse:
        self.calls["read"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        run = self._run(request)
        if run is None:
            return JSONResponse({"message": "no such run"}, status_code=404)
        with self._lock:
            view = run.view()
            run.reads += 1
        return JSONResponse({"run": view})

    async def stop(self, request: Request) -> JSONResponse:
        self.calls["stop"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        run = self._run(request)
        if run is None:
            return JSONResponse({"message": "no such run"}, status_code=404)
        if run.status() in ("pending", "working"):
            run.stopped = True
        return JSONResponse({"run": run.view()})


class FakeVendorServer:
    """``with FakeVendorServer() as server:`` serves the fake API on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        self.vendor = FakeVendor()
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        import uvicorn

        config = uvicorn.Config(
            self.vendor.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fifth-vendor", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake vendor did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
