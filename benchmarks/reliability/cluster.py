"""The processes of one reliability run: the emulator and real Airflow 3 components, on loopback.

Two topologies: the default (SQLite, LocalExecutor, one of each component) and the production shape
(PostgreSQL, CeleryExecutor with a Redis broker and Celery workers, several schedulers and
triggerers; see :class:`Topology`).

Every process starts in its own session, and "kill the triggerer" (or stop everything) is a
``killpg`` of that session's group plus a SIGKILL of every descendant found under its leader:
Airflow's supervisor gives each task process and the trigger runner a process group of their own,
so the group alone would miss them. Nothing else on the machine is touched.
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
from typing import IO, Any

import httpx

from benchmarks.reliability.hostname import NAME_ENV
from benchmarks.reliability.procstat import descendants, with_environment
from benchmarks.reliability.services import Postgres, Redis

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
BIN = Path(sys.executable).parent
#: Airflow components, each started as ``airflow <argv>``. Several triggerers or Celery workers on one
#: host would fight over the log-serving port; they all write under one AIRFLOW_HOME, which the API
#: server reads directly, so none needs to serve its logs.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--workers", "1"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "worker": ["celery", "worker", "--skip-serve-logs"],
}


@dataclass(frozen=True)
class Topology:
    """How many of each component, and on what: ``production`` means PostgreSQL + CeleryExecutor."""

    production: bool = False
    schedulers: int = 1
    triggerers: int = 1
    workers: int = 0
    #: Task slots of each Celery worker (``--concurrency``).
    worker_concurrency: int = 8
    #: Queues each worker listens to, one string per worker (``default`` when not given).
    worker_queues: tuple[str, ...] = ()

    def names(self, kind: str) -> list[str]:
        """Process names of one kind: ``triggerer`` alone, or ``triggerer-1``, ``triggerer-2``..."""
        count = {"scheduler": self.schedulers, "triggerer": self.triggerers, "worker": self.workers}.get(
            kind, 1
        )
        return [kind] if count == 1 and kind != "worker" else [f"{kind}-{i}" for i in range(1, count + 1)]


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
    #: PostgreSQL's "fast shutdown" is SIGINT; its SIGTERM waits for every client to leave.
    stop_signal: signal.Signals = signal.SIGTERM
    #: Descendants seen when the stop began (they may be reparented once the leader exits).
    tree: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        # The process leads its own session (start_new_session), so its pid is its group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the group and every descendant (task processes and the trigger runner have groups
        of their own), as a lost node would."""
        tree = descendants(self.popen.pid)
        self.signal_group(signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
        self.ask_to_stop()
        self.finish_stop(time.monotonic() + grace)

    def ask_to_stop(self) -> None:
        # Known now: once the leader exits, its orphans are reparented and no longer found under it.
        self.tree = descendants(self.popen.pid)
        if self.alive():
            self.signal_group(self.stop_signal)

    def finish_stop(self, deadline: float) -> None:
        """Wait for the leader until ``deadline``, then SIGKILL what is left of the group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Children may outlive a leader that exited on SIGTERM; the group id stays valid for them.
        self.signal_group(signal.SIGKILL)
        for pid in self.tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self.log.close()


class Cluster:
    """The emulator plus scheduler, triggerer, DAG processor and API server for one run directory."""

    def __init__(
        self,
        run_dir: Path,
        *,
        parallelism: int,
        job_seconds: tuple[float, float],
        topology: Topology | None = None,
        dags: Path = DAGS,
        emulator_args: tuple[str, ...] = (),
    ) -> None:
        self.run_dir = run_dir
        self.topology = topology or Topology()
        self.dags = dags
        self.emulator_args = emulator_args
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
        self.postgres: Postgres | None = None
        self.redis: Redis | None = None
        #: More variables for every Airflow process (connections of a comparison, say).
        self.extra_env: dict[str, str] = {}
        if self.topology.production:
            self.postgres = Postgres(free_port())
            self.redis = Redis(free_port(), run_dir / "redis")

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- processes ---------------------------------------------------------------------------

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        user: dict[str, Any] | None = None,
    ) -> Process:
        count = self._restarts.get(name, 0)
        self._restarts[name] = count + 1
        log = open(self.out / f"{name}.{count}.log", "wb")  # noqa: SIM115 - closed by Process.stop
        popen = subprocess.Popen(
            argv,
            env=env if env is not None else self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # The server's own directory when it runs as another user (the run directory is private).
            cwd=self.postgres.dir if user and self.postgres else self.run_dir,
            start_new_session=True,
            **(user or {}),
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
            *self.emulator_args,
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
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
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
                # The reliability DAG folder's helpers serve the production DAGs too.
                "PYTHONPATH": str(DAGS),
                "EDGEINFER_RELIABILITY_MARKERS": str(self.markers),
                "EDGEINFER_RELIABILITY_BATCH_OUTPUT": str(self.batch_output),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.postgres is not None and self.redis is not None:
            env.update(self._production_env(self.postgres, self.redis))
        self.env = env | self.extra_env

    def _production_env(self, postgres: Postgres, redis: Redis) -> dict[str, str]:
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url(),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": postgres.url("db+postgresql+psycopg2"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.topology.worker_concurrency),
            # A task whose worker died stops heartbeating; after this long the scheduler fails the
            # try and the retry runs elsewhere (default 300 s; shortened so the run stays short).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        }

    def start_services(self) -> None:
        """PostgreSQL and Redis (production topology only), before ``migrate``."""
        if self.postgres is None or self.redis is None:
            return
        postgres = self.postgres
        with open(self.out / "initdb.log", "wb") as log:
            postgres.init(log)
        self._spawn(
            "postgres", postgres.argv(), env=dict(os.environ), user=postgres.as_user
        ).stop_signal = signal.SIGINT
        wait_until(postgres.ready, 60, "PostgreSQL to accept connections")
        with open(self.out / "createdb.log", "wb") as log:
            postgres.create_database(log)
        self._spawn("redis", self.redis.argv(), env=dict(os.environ))
        wait_until(lambda: _port_open(self.redis.port if self.redis else 0), 30, "Redis to listen")

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

    def start(self, name: str) -> Process:
        """Start (or restart) the component called ``name`` (``triggerer``, ``worker-2``...)."""
        kind = name if name in COMPONENTS else name.rsplit("-", 1)[0]
        argv = [str(BIN / "airflow"), *COMPONENTS[kind]]
        if kind == "worker":
            index = int(name.rsplit("-", 1)[1])
            queues = self.topology.worker_queues
            argv += ["--celery-hostname", f"{name}@%h"]
            argv += ["--queues", queues[index - 1] if len(queues) >= index else "default"]
        if kind == "triggerer":
            # Named in the job table: the harness needs to know which process runs which trigger.
            env = {
                **self.env,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")])),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "benchmarks.reliability.hostname.process_hostname",
                NAME_ENV: name,
            }
            return self._spawn(name, argv, env=env)
        return self._spawn(name, argv)

    def start_airflow(self) -> None:
        self.start("api-server")
        wait_until(self.api_ready, 120, "the API server to start")
        names = ["dag-processor"]
        for kind in ("scheduler", "triggerer", "worker"):
            names += self.topology.names(kind) if kind != "worker" or self.topology.workers else []
        for name in names:
            self.start(name)

    def kill(self, component: str) -> float:
        """SIGKILL a component and all its descendants; returns when the leader is reaped."""
        process = self.processes[component]
        process.kill_tree()
        process.popen.wait(timeout=10)
        process.log.close()
        return time.monotonic()

    def api_ready(self) -> bool:
        return _ok(f"{self.api_url}/api/v2/monitor/health")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                raise RuntimeError(f"{name} exited with {process.popen.returncode}; see {process.log.name}")

    def stop_all(self, grace: float = 15.0) -> None:
        """Airflow first (it may still be talking to the emulator), then its broker and database, the
        emulator last; each tier is asked to stop at once and gets ``grace`` seconds together."""
        services = ("redis", "postgres", "emulator")
        tiers = [[n for n in self.processes if n not in services], ["redis", "postgres"], ["emulator"]]
        for tier in tiers:
            stopping = [self.processes[n] for n in tier if n in self.processes]
            for process in stopping:
                process.ask_to_stop()
            deadline = time.monotonic() + grace
            for process in stopping:
                process.finish_stop(deadline)
        # Whatever escaped both (a task process orphaned by a kill is reparented away from its
        # component) still carries this run's AIRFLOW_HOME.
        for pid in with_environment(f"AIRFLOW_HOME={self.home}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove_services(self) -> None:
        """The database's directory (outside the run directory); after ``stop_all`` and the scan."""
        if self.postgres is not None:
            self.postgres.remove()

    def log_files(self) -> Iterator[Path]:
        yield from sorted(self.out.glob("*.log"))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
