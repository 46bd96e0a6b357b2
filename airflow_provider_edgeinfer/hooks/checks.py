"""The pieces of a connection check each hook's read-only and paid checks are made of.

A check sends one call as the hook is configured (:func:`check_settings`: once, within 10 s), and
reports what worked, what failed, and answer fields the client's models do not declare (kept, but
not in the contract the client is written against). ``python -m airflow_provider_edgeinfer.check``
and the UI's Test button run them (see :mod:`airflow_provider_edgeinfer.check`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from airflow_provider_edgeinfer.exceptions import EdgeInferError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call, HttpResult
    from airflow_provider_edgeinfer.clients.transport import HttpSettings
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: Longest a check call may take, and the longest wait for the paid inference to end.
CALL_SECONDS = 10.0
INFERENCE_WAIT_SECONDS = 120.0
#: A chat turn that costs as little as a model can charge.
TINY_CHAT = [{"role": "user", "content": "Reply with OK."}]


@dataclass
class CheckResult:
    """One check: ``ok`` is True (worked), False (failed) or None (skipped, nothing was sent)."""

    name: str
    ok: bool | None
    detail: str
    #: Answer fields the client's models do not declare (kept, but not in the contract).
    unknown_fields: list[str] = field(default_factory=list)
    #: Shapes the vendor chose where the client tolerates more than one.
    notes: list[str] = field(default_factory=list)
    cost: str | None = None
    #: The parsed answer, for a check that builds on it (not reported).
    value: Any = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


def check_settings(seconds: float = CALL_SECONDS) -> HttpSettings:
    """HTTP settings of a check: each call sent once, bounded by ``seconds`` in all."""
    from airflow_provider_edgeinfer.clients.retry import RetrySettings
    from airflow_provider_edgeinfer.clients.transport import HttpSettings

    return HttpSettings(
        connect_timeout=seconds,
        read_timeout=seconds,
        retry=RetrySettings(max_attempts=1, max_total_delay=0.0),
        call_deadline=seconds,
    )


# -- what an answer holds beyond the contract ----------------------------------------------------


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of answer fields the client's (lenient) pydantic models kept as extras."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in sorted(value.model_extra or {}):
            found.append(f"{path}.{name}".lstrip("."))
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for item in value:
            found += unknown_fields(item, f"{path}[]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, f"{path}.{key}")
    elif hasattr(value, "items") and hasattr(value, "next_call"):  # a Page
        found += unknown_fields(value.items, f"{path}items")
    return sorted(set(found))


def raw(call: Call[Any]) -> Call[tuple[Any, HttpResult]]:
    """The same call, answered with its parsed value and the raw answer (status, shape)."""
    return call.reparse(lambda result: (call.parse(result), result))


def attempt(
    name: str,
    hook: EdgeInferHook,
    call: Call[Any],
    describe: Callable[[Any, HttpResult], str],
    notes: Callable[[Any, HttpResult], list[str]] | None = None,
) -> CheckResult:
    started = time.monotonic()
    try:
        value, result = hook.run(raw(call))
    except EdgeInferError as exc:
        return CheckResult(name, False, error_text(exc))
    except Exception as exc:  # a check reports every failure; our errors carry no secrets
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")
    took = (time.monotonic() - started) * 1000
    where = f"{call.method} {_path(call.url)}, HTTP {result.status}, {took:.0f} ms"
    return CheckResult(
        name,
        True,
        f"{describe(value, result)} ({where})",
        unknown_fields=unknown_fields(value),
        notes=notes(value, result) if notes else [],
        value=value,
    )


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def error_text(exc: EdgeInferError) -> str:
    # The message names the vendor, the operation and the HTTP status already.
    return f"{type(exc).__name__}: {exc}"


def count(value: Any, what: str) -> str:
    items = value.items if hasattr(value, "next_call") else value
    return f"{len(items)} {what}"


def read_only_checks(hook: EdgeInferHook) -> list[CheckResult]:
    """The hook's read-only checks (:meth:`EdgeInferHook.read_only_checks`); nothing is created or billed.

    Each call is sent as the hook is configured: give the hook :func:`check_settings` (as
    ``python -m airflow_provider_edgeinfer.check`` does) for one attempt within 10 s.
    """
    try:
        return list(hook.read_only_checks())
    except EdgeInferError as exc:  # e.g. a connection without a key: nothing could be sent
        return [CheckResult("connection", False, error_text(exc))]


def summary(results: Sequence[CheckResult]) -> str:
    """One line for a UI: what failed, else what worked."""
    failed = [r for r in results if r.ok is False]
    if failed:
        return "; ".join(f"{r.name}: {r.detail}" for r in failed)
    return "; ".join(f"{r.name}: {r.detail}" for r in results if r.ok)
