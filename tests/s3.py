"""S3 for tests: moto's server in its own process on loopback, reached through ObjectStoragePath.

A separate process (not ``ThreadedMotoServer``) so that memory measured in the test process is the
client's alone: moto holds every object in memory and copies it to answer a ranged GET. One server
serves the whole session (:meth:`MotoS3.shared`): Airflow caches a filesystem per connection id, so
a second server behind the same connection would never be reached.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import httpx

CONN_ID = "edgeinfer_test_s3"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """``with MotoS3() as s3:`` serves S3 on 127.0.0.1; ``s3.connection()`` is an aws connection to it."""

    _shared: MotoS3 | None = None

    @classmethod
    def shared(cls) -> MotoS3:
        """The session's server, started on first use and stopped when the interpreter exits."""
        if cls._shared is None:
            cls._shared = cls().start()
            atexit.register(cls._shared.stop)
        return cls._shared

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        # Requests are recorded (when a test asks, see :meth:`requests`) in a file of the server's own.
        self._recording = tempfile.mkstemp(prefix="edgeinfer-moto-", suffix=".jsonl")[1]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        env["MOTO_RECORDER_FILEPATH"] = self._recording
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
            with contextlib.suppress(OSError):
                os.unlink(self._recording)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def connection(self) -> str:
        """``AIRFLOW_CONN_EDGEINFER_TEST_S3``: an aws connection whose S3 endpoint is this server."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": self.url, "region_name": REGION},
            }
        )

    def env(self) -> dict[str, str]:
        return {
            f"AIRFLOW_CONN_{CONN_ID.upper()}": self.connection(),
            # Nothing must ever fall back to the real AWS.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def bucket(self, name: str) -> Any:
        s3 = self.client()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name)
        return s3

    @contextlib.contextmanager
    def requests(self) -> Iterator[Counter[str]]:
        """Counts the S3 requests made while the block runs, by method and kind (``GET object``,
        ``HEAD object``, ``GET list``...); the counter is filled when the block ends."""
        counts: Counter[str] = Counter()
        httpx.post(f"{self.url}/moto-api/recorder/reset-recording").raise_for_status()
        httpx.post(f"{self.url}/moto-api/recorder/start-recording").raise_for_status()
        try:
            yield counts
        finally:
            httpx.post(f"{self.url}/moto-api/recorder/stop-recording").raise_for_status()
            recorded = httpx.get(f"{self.url}/moto-api/recorder/download-recording")
            for line in recorded.text.splitlines():
                if line.strip():
                    entry = json.loads(line)
                    path, _, query = entry["url"].partition("?")
                    bucket_level = path.split("://", 1)[-1].strip("/").count("/") <= 1
                    kind = (
                        "list" if bucket_level and ("list-type" in query or "prefix" in query) else "object"
                    )
                    counts[f"{entry['method']} {kind}"] += 1
