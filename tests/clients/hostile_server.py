"""A TCP server on 127.0.0.1 that answers HTTP requests as badly as a test needs (hostile vendors)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

Reply = Callable[[socket.socket, bytes], None]


class Hostile:
    """A TCP server on 127.0.0.1 that reads each request and answers it with ``reply(conn, head)``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.sent = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                    if k.lower() == b"content-length"
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head)
            with contextlib.suppress(OSError):  # the client hung up: what the limits are for
                self.reply(conn, head)

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._closed.set()
        self._server.close()


def serving() -> Iterator[Callable[[Reply], Hostile]]:
    """Body of a ``serve`` fixture: starts servers on demand, closes them all afterwards."""
    servers: list[Hostile] = []

    def start(reply: Reply) -> Hostile:
        servers.append(Hostile(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
