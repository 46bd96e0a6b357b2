"""Serve the emulator on a real loopback socket, in a background thread (tests, benchmarks, demo)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Self

import httpx

from airflow_provider_edgeinfer.emulator.state import EmulatorState


class EmulatorServer:
    """``with EmulatorServer() as emu:`` starts uvicorn on 127.0.0.1 (a free port) and stops it after."""

    def __init__(self, state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator only listens on loopback")
        self.state = state or EmulatorState()
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def vendor_url(self, vendor: str) -> str:
        return f"{self.url}/{vendor}"

    def connections(self) -> dict[str, str]:
        from airflow_provider_edgeinfer.emulator.app import connections

        return connections(self.url, self.state)

    def start(self) -> Self:
        import uvicorn

        from airflow_provider_edgeinfer.emulator.app import create_app

        config = uvicorn.Config(
            create_app(self.state),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="edgeinfer-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.state.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- control, for tests ----------------------------------------------------------------

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            if body is None:
                response = client.get(f"/_emulator/{path}")
            else:
                response = client.post(f"/_emulator/{path}", json=body)
            response.raise_for_status()
            return response.json()

    def counters(self) -> dict[str, Any]:
        return self.state.snapshot()
