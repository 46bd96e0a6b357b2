"""The UI's Test button (``test_connection``): one answer within a fixed time, readable everywhere.

Every call is sent once, and all of them share one time budget (not one each: a vendor with three
checks must still answer within it). The message says which check failed and why, in words that
both the UI and ``airflow connections test`` show as written: the CLI prints it through Rich, which
takes ``[word ...]`` for a style tag and swallows it (our errors start with ``[vendor operation]``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.clients.transport import HttpSettings

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: Longest the Test button waits for its whole answer.
TEST_CONNECTION_SECONDS = 10.0

# Rich's markup tag: "[" then a lowercase letter, "#", "/" or "@", up to the next "]" (rich.markup.RE_TAGS).
_RICH_TAG = re.compile(r"\[([a-z#/@][^\[]*?)\]")


@dataclass(frozen=True)
class BudgetSettings(HttpSettings):
    """HTTP settings whose every call ends by ``ends_at`` (monotonic clock) at the latest."""

    ends_at: float = 0.0

    def limits_of(self, call: Call[Any]) -> tuple[int, float]:
        size, deadline = super().limits_of(call)
        # A call started after the budget is spent still gets a sliver, so it fails as a timeout.
        return size, max(min(deadline, self.ends_at - time.monotonic()), 0.001)


def budget_settings(seconds: float) -> BudgetSettings:
    """One attempt per call, every call over by ``seconds`` from now."""
    from airflow_provider_edgeinfer.hooks.checks import check_settings

    once = check_settings(seconds)
    return BudgetSettings(
        connect_timeout=once.connect_timeout,
        read_timeout=once.read_timeout,
        retry=once.retry,
        call_deadline=once.call_deadline,
        ends_at=time.monotonic() + seconds,
    )


def plain(text: str) -> str:
    """``text`` with every bracket pair Rich would read as markup turned into parentheses."""
    return _RICH_TAG.sub(r"(\1)", text)


def probe_connection(hook: EdgeInferHook, seconds: float = TEST_CONNECTION_SECONDS) -> tuple[bool, str]:
    """(worked, what failed or what worked) for ``hook``'s connection, within ``seconds``."""
    from airflow_provider_edgeinfer.hooks.checks import read_only_checks, summary

    try:
        probe = type(hook)(hook.conn_id, http_settings=budget_settings(seconds))
        try:
            results = read_only_checks(probe)
        finally:
            probe.close()
    except Exception as exc:  # a connection that cannot be used; our errors carry no secrets
        return False, plain(f"{type(exc).__name__}: {exc}")
    return not any(r.ok is False for r in results), plain(summary(results))
