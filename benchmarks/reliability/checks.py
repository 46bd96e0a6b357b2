"""What a reliability run measured: counts from the emulator and Airflow, and a scan for leaked secrets."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Files larger than this are scanned in overlapping chunks (the SQLite file can grow large).
CHUNK = 8 * 1024 * 1024


def secret_needles(values: Iterable[str]) -> list[bytes]:
    """Each secret as raw bytes plus the forms an HTTP stack or a serializer could turn it into."""
    needles: set[bytes] = set()
    for value in values:
        raw = value.encode()
        needles.add(raw)
        # Basic auth and some token exchanges base64 the key; three alignments catch it mid-string too.
        for shift in range(3):
            chunk = base64.b64encode(b"\0" * shift + raw)[4 if shift else 0 :][:-4]
            if len(chunk) >= 12:
                needles.add(chunk)
    return sorted(needles)


def count_in_file(path: Path, needles: list[bytes]) -> int:
    longest = max(len(n) for n in needles)
    found = 0
    with open(path, "rb") as handle:
        tail = b""
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            # Count only matches that end in the new chunk, so none is counted twice.
            found += sum(
                1
                for needle in needles
                for start in _find_all(window, needle)
                if start + len(needle) > len(tail)
            )
            tail = window[-(longest - 1) :] if longest > 1 else b""
    return found


def _find_all(haystack: bytes, needle: bytes) -> Iterable[int]:
    start = haystack.find(needle)
    while start != -1:
        yield start
        start = haystack.find(needle, start + 1)


def scan_paths(roots: Iterable[Path], needles: list[bytes], exclude: set[Path]) -> Counter[str]:
    """Occurrences per file (relative names only: the report must not print a secret, only where)."""
    hits: Counter[str] = Counter()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.resolve() in exclude:
                continue
            n = count_in_file(path, needles)
            if n:
                hits[str(path)] += n
    return hits


def scan_values(label: str, values: Iterable[Any], needles: list[bytes]) -> Counter[str]:
    hits: Counter[str] = Counter()
    for value in values:
        text = json.dumps(value, default=str).encode()
        n = sum(text.count(needle) for needle in needles)
        if n:
            hits[label] += n
    return hits


@dataclass
class Outcome:
    """The numbers of the RESULT line, and the evidence behind them."""

    submitted: int = 0
    completed: int = 0
    duplicated: int = 0
    lost: int = 0
    cancelled: int = 0
    cancel_latency_s: float | None = None
    leaked_secrets: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaks: Counter[str] = field(default_factory=Counter)
    table: list[tuple[str, str, str]] = field(default_factory=list)
    #: More ``key=value`` pairs for the RESULT line: ``first`` right after ``lost``, ``extra`` after
    #: ``cancel_latency_s``.
    first: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    cancel_target_s: float = 5.0

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    @property
    def passed(self) -> bool:
        return (
            not self.failures
            and self.duplicated == 0
            and self.lost == 0
            and self.leaked_secrets == 0
            and self.cancel_latency_s is not None
            and self.cancel_latency_s <= self.cancel_target_s
        )

    def result_line(self) -> str:
        latency = "none" if self.cancel_latency_s is None else f"{self.cancel_latency_s:.2f}"
        pairs = {
            "submitted": str(self.submitted),
            "completed": str(self.completed),
            "duplicated": str(self.duplicated),
            "lost": str(self.lost),
            **self.first,
            "cancel_latency_s": latency,
            **self.extra,
            "leaked_secrets": str(self.leaked_secrets),
        }
        return "RESULT " + " ".join(f"{k}={v}" for k, v in pairs.items())

    def render_table(self) -> str:
        width = max((len(name) for name, _, _ in self.table), default=10)
        lines = [f"{'check':<{width}}  {'expected':>10}  {'measured':>10}"]
        lines += [f"{name:<{width}}  {want:>10}  {got:>10}" for name, want, got in self.table]
        return "\n".join(lines)
