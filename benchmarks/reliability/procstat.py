"""CPU time and busy worker slots of process trees, sampled from /proc (Linux) in a thread.

A process's CPU is read while it lives; its last reading stays counted after it exits or is killed,
so a SIGKILLed triggerer's work up to the kill is not lost from the total.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(ppid, pgrp, CPU seconds incl. reaped children) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return int(fields[1]), int(fields[2]), ticks / TICK


def all_processes() -> dict[int, tuple[int, int, float]]:
    out: dict[int, tuple[int, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                out[int(entry)] = stat
    return out


def descendants(root: int, procs: dict[int, tuple[int, int, float]] | None = None) -> list[int]:
    """Every live descendant of ``root``. Airflow's supervisor puts each task process and the trigger
    runner in a process group of its own, so a component's group does not hold all its processes."""
    procs = all_processes() if procs is None else procs
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def with_environment(entry: str) -> list[int]:
    """Processes whose environment holds ``entry`` (``NAME=value``), other than this one."""
    needle = entry.encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes() + b"\0"
            except OSError:
                continue
            if b"\0" + needle in b"\0" + environ:
                found.append(int(name))
    return found


class GroupSampler:
    """Every ``interval`` s: CPU of each process of the components ``cpu_roots()`` names (leader and
    every descendant), and how many task processes (Celery worker -> pool process -> task) run under
    the workers ``slot_roots()`` names, integrated into slot-seconds."""

    def __init__(
        self,
        cpu_roots: Callable[[], dict[str, int]],
        slot_roots: Callable[[], set[int]],
        interval: float = 1.0,
    ) -> None:
        self.cpu_roots = cpu_roots
        self.slot_roots = slot_roots
        self.interval = interval
        self.cpu: dict[tuple[str, int], float] = {}
        self.slot_seconds = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="group-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def cpu_seconds(self, prefix: str = "") -> float:
        """CPU seconds so far of every sampled component whose name starts with ``prefix``."""
        with self._lock:
            return sum(v for (name, _), v in self.cpu.items() if name.startswith(prefix))

    def slots(self) -> float:
        with self._lock:
            return self.slot_seconds

    def sample(self, elapsed: float) -> None:
        procs = all_processes()
        readings: dict[tuple[str, int], float] = {}
        for name, root in self.cpu_roots().items():
            for pid in [root, *descendants(root, procs)]:
                if pid in procs:
                    readings[(name, pid)] = procs[pid][2]
        busy = 0
        for leader in self.slot_roots():
            pool = {pid for pid, (ppid, _, _) in procs.items() if ppid == leader}
            busy += sum(1 for ppid, _, _ in procs.values() if ppid in pool)
        with self._lock:
            for key, cpu in readings.items():
                self.cpu[key] = max(cpu, self.cpu.get(key, 0.0))
            self.slot_seconds += busy * elapsed

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            self.sample(now - last)
            last = now
