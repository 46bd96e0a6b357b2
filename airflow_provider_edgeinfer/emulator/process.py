"""The emulator in a process of its own on a free loopback port: what ``make demo`` and the benchmarks run.

Tests use the in-process :class:`~airflow_provider_edgeinfer.emulator.server.EmulatorServer` instead;
a separate process keeps the emulator's CPU and memory out of what a benchmark measures.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_process(
    *options: str, port: int | None = None, show_errors: bool = False, start_timeout: float = 30.0
) -> Iterator[str]:
    """Run ``python -m airflow_provider_edgeinfer.emulator`` with ``options`` while the block runs.

    Yields the base URL once the emulator answers its health check; stops it on the way out.
    ``show_errors`` lets its stderr through (its stdout, the access log, never is).
    """
    port = port or free_port()
    argv = [sys.executable, "-m", "airflow_provider_edgeinfer.emulator", "--host", LOOPBACK]
    process = subprocess.Popen(
        [*argv, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=None if show_errors else subprocess.DEVNULL,
    )
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                httpx.get(f"{base}/_emulator/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator did not start on {base}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connection_env(base: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the four default connections, pointing at the emulator."""
    env: dict[str, str] = {}
    for line in httpx.get(f"{base}/_emulator/connections", timeout=5).text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    return env
