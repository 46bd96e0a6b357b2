"""The processes of one reliability run: the emulator and real Airflow 3 components, on loopback.

Every process starts in its own session, so "kill the triggerer" (or stop everything) is one
``killpg`` that also reaches its children (the trigger runner, LocalExecutor workers, task processes)
and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
BIN = Path(sys.executable).parent
#: Airflow components, each started as ``airflow <argv>``.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--workers", "1"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_secrets() -> dict[str, str]:
    """Fresh, unmistakable keys: any occurrence of one outside the emulator's memory is a leak."""
    tag = secrets.token_hex(10)
    return {
        "theta": f"rlbt-theta-{tag}",
        "octoai": f"rlbt-octoai-{tag}",
        "infrai": f"ifr_pk_rlbt_{tag}",
        "omnitensor": f"rlbt-omnitensor-{tag}",
        "omnitensor_secret": f"rlbt-omnisecret-{tag}",
    }


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        # The process leads its own session (start_new_session), so its pid is its group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Children may outlive a leader that exited on SIGTERM; the group id stays valid for them.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self.log.close()


class Cluster:
    """The emulator plus scheduler, triggerer, DAG processor and API server for one run directory."""

    def __init__(self, run_dir: Path, *, parallelism: int, job_seconds: tuple[float, float]) -> None:
        self.run_dir = run_dir
        self.home = run_dir / "airflow_home"
        self.out = run_dir / "process_logs"
        self.markers = run_dir / "markers"
        self.batch_output = run_dir / "batch_output"
        for path in (self.home, self.out, self.markers):
            path.mkdir(parents=True, exist_ok=True)
        self.secrets = fake_secrets()
        # Outside AIRFLOW_HOME and the log directory: the leak scan must not count the source.
        self.keys_file = run_dir / "emulator_keys.json"
        self.keys_file.write_text(json.dumps(self.secrets))
        self.keys_file.chmod(0o600)
        self.parallelism = parallelism
        self.job_seconds = job_seconds
        self.emulator_port = free_port()
        self.api_port = free_port()
        self.processes: dict[str, Process] = {}
        self._restarts: dict[str, int] = {}
        self.env: dict[str, str] = {}

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        count = self._restarts.get(name, 0)
        self._restarts[name] = count + 1
        log = open(self.out / f"{name}.{count}.log", "wb")  # noqa: SIM115 - closed by Process.stop
        popen = subprocess.Popen(
            argv,
            env=env if env is not None else self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.run_dir,
            start_new_session=True,
        )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def start_emulator(self) -> None:
        low, high = self.job_seconds
        argv = [
            sys.executable,
            "-m",
            "airflow_provider_edgeinfer.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.emulator_port),
            "--queued-seconds",
            "1",
            "--running-seconds",
            str(low),
            "--running-seconds-max",
            str(high),
            "--keys-file",
            str(self.keys_file),
        ]
        self._spawn("emulator", argv, env=dict(os.environ))
        wait_until(lambda: _ok(f"{self.emulator_url}/_emulator/health"), 30, "the emulator to start")

    def configure_airflow(self) -> None:
        """The environment every Airflow process shares (connections included, never printed)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        conns = httpx.get(f"{self.emulator_url}/_emulator/connections", timeout=5).text
        for line in conns.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # Four processes write to one SQLite file: wait up to 60 s for its lock rather than
                # the driver's 5 s, which under load fails a state update with "database is locked".
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db?timeout=60",
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # Airflow 3 accepts SQLite with LocalExecutor (no check forbids it); tasks write through
                # the API server, so the database sees a handful of writers, not one per task.
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                # Scheduler, API server and workers must sign and check the same task tokens.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # A SIGKILLed triggerer stops heartbeating; its triggers move to the new one once it
                # counts as dead. 15 s instead of 30 s keeps the run short.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "EDGEINFER_RELIABILITY_MARKERS": str(self.markers),
                "EDGEINFER_RELIABILITY_BATCH_OUTPUT": str(self.batch_output),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env

    def migrate(self) -> None:
        log = self.out / "db-migrate.log"
        with open(log, "wb") as out:
            subprocess.run(
                [str(BIN / "airflow"), "db", "migrate"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=300,
                cwd=self.run_dir,
            )

    def start(self, component: str) -> Process:
        return self._spawn(component, [str(BIN / "airflow"), *COMPONENTS[component]])

    def start_airflow(self) -> None:
        self.start("api-server")
        wait_until(lambda: _ok(f"{self.api_url}/api/v2/monitor/health"), 120, "the API server to start")
        for component in ("dag-processor", "scheduler", "triggerer"):
            self.start(component)

    def kill(self, component: str) -> float:
        """SIGKILL a component and all its children; returns when the leader is reaped."""
        process = self.processes[component]
        process.signal_group(signal.SIGKILL)
        process.popen.wait(timeout=10)
        process.log.close()
        return time.monotonic()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                raise RuntimeError(f"{name} exited with {process.popen.returncode}; see {process.log.name}")

    def stop_all(self) -> None:
        # Airflow first (it may still be talking to the emulator), the emulator last.
        order = ["scheduler", "triggerer", "dag-processor", "api-server", "emulator"]
        for name in order:
            if name in self.processes:
                self.processes[name].stop()

    def log_files(self) -> Iterator[Path]:
        yield from sorted(self.out.glob("*.log"))


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(predicate: Callable[[], bool], seconds: float, what: str, interval: float = 0.5) -> None:
    """Poll ``predicate`` until true; bounded by ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
