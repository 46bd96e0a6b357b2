"""A vendor that answers something hostile, on 127.0.0.1, and a guard that keeps traffic on loopback.

Fixtures (import ``hostile_fixture`` / ``loopback_only_fixture`` into a test module to use them):
``hostile`` is a running :class:`HostileServer`, ``loopback_only`` records refused connections.

:class:`HostileServer` answers each request from a table the test fills (method and path, without
the query, to a function of the request); it records every request it saw. :func:`loopback_only`
makes any connection to an address other than loopback fail the test before a packet leaves.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

#: The smallest valid PNG header: enough for the magic-byte sniffing of written media.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PNG_B64 = base64.b64encode(PNG).decode()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
        return cls(
            status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Seen], Answer]


class HostileServer:
    """``with HostileServer() as server: server.routes[("GET", "/x")] = lambda seen: Answer(...)``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                server.seen.append(seen)
                route = server.routes.get((self.command, urlsplit(self.path).path))
                answer = route(seen) if route is not None else Answer(404, b'{"error": "no route"}')
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def media(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; returns its URL."""
        self.routes[("GET", path)] = lambda seen: Answer(
            200, data, {"Content-Type": "application/octet-stream"}
        )
        return self.url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[("GET", path)] = lambda seen: Answer(status, b"", {"Location": location})
        return self.url + path


@pytest.fixture(name="hostile")
def hostile_fixture() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _is_loopback(host: Any) -> bool:
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return str(host) == "localhost"


@pytest.fixture(name="loopback_only")
def loopback_only_fixture(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse (and record) any connection attempt to a non-loopback address."""
    attempts: list[Any] = []
    create_connection = socket.create_connection
    connect = socket.socket.connect

    def guarded_create(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_loopback(address[0]):
            attempts.append(address)
            raise AssertionError(f"a connection to {address} was attempted")
        return create_connection(address, *args, **kwargs)

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            attempts.append(address)
            raise AssertionError(f"a connection to {address} was attempted")
        connect(self, address)

    monkeypatch.setattr(socket, "create_connection", guarded_create)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts
