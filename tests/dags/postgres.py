"""A throw-away PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` in a temporary directory,
listening on a free loopback port only, stopped (and its directory removed) when the test is done.

The server binaries are looked for under ``/usr/lib/postgresql/*/bin`` (Debian's layout; version
15 preferred) and then on ``PATH``. Missing binaries fail the test with how to install them: a test
of the PostgreSQL path must never pass without having run on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.reliability.cluster import free_port

INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin "
    "nor on PATH. Install them (Debian/Ubuntu: `apt-get install postgresql-15`, or `postgresql`) "
    "and run the test again."
)
#: initdb refuses to run as root: as root the server runs as this user.
SERVER_USER = "postgres"


def server_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent.parent.name)
    preferred = [p for p in found if p.parent.parent.name == "15"] or found
    if preferred:
        return preferred[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    port: int
    password: str
    user: str = "edgeinfer"
    databases: list[str] = field(default_factory=list)

    def fresh_database(self) -> str:
        """A new, empty database; its Airflow connection as JSON (``AIRFLOW_CONN_...``)."""
        import psycopg2

        name = f"t{len(self.databases)}_{secrets.token_hex(4)}"
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        finally:
            conn.close()
        self.databases.append(name)
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.user,
                "password": self.password,
                "schema": name,
            }
        )


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=120)
    if done.returncode:
        output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {output}")


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    if binaries is None:
        pytest.fail(INSTALL_HINT)
    # Not under pytest's tmp_path: that is private to root, and the server may run as another user.
    base = Path(tempfile.mkdtemp(prefix="edgeinfer-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(base)
            pytest.fail(f"running as root, PostgreSQL needs the user {SERVER_USER!r}. {INSTALL_HINT}")
        os.chown(base, account.pw_uid, account.pw_gid)
    data, password_file = base / "data", base / "password"
    server = PostgresServer(port=free_port(), password=secrets.token_hex(12))
    password_file.write_text(server.password)
    if os.geteuid() == 0:
        os.chown(password_file, pwd.getpwnam(SERVER_USER).pw_uid, -1)
    _run(
        _as_server_user(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                server.user,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--no-sync",
            ]
        )
    )
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {base} -c fsync=off"
    start = [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w"]
    try:
        _run(_as_server_user([*start, "start"]))
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            _run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]))
        pid_file = data / "postmaster.pid"
        if pid_file.exists():  # still up: stop it by its pid
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
