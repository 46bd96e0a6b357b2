"""How a user follows a task while it runs: progress lines in task and triggerer logs, money, and
links to the vendor's own page for the task's request or batch.

One rule for every progress line (:class:`Cadence`): a line is written when what it says changed
(but never more often than ``min_gap`` seconds), and otherwise once every ``every`` seconds, so a
long wait is never silent and a fast poll never repeats the same line. Throughput is estimated from
recent completions only (:class:`Throughput`): a batch that waited in a queue and then runs fast
gets the rate it runs at now, and until enough items finished the line says the rate is not known
yet instead of showing ``0.0 items/s`` or an ETA built on nothing.

Clocks are injected (monotonic seconds), so the rules are tested without waiting.

**Money in log lines** (:func:`format_cost`, :func:`format_total`): a cost the vendor did not state is
unknown, never $0. Results (XCom, ``results.jsonl``) carry ``cost_usd: null`` for such a cost; a
batch total sums only the stated costs and counts the items without one. Every log line that shows
money formats it here.

**Extra links** (:class:`VendorRequestLink`, :class:`VendorBatchLink`): a task pushes the URL of its
page to XCom once it knows it (a request id, a batch id). A link is registered on a task only when
the vendor behind its connection has such pages (the client's ``request_pages`` / ``batch_pages``),
so a task on a vendor without pages shows no "Extra Links" heading at all. The vendor is read from
the connection's type when the DAG is parsed; when that cannot be known then (a templated or mapped
``conn_id``, a connection defined only at run time) the link is registered and simply stays empty if
no page exists. The links serve both operators and both sensors.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

#: Seconds between two lines that say nothing new (a heartbeat while a request or batch runs).
HEARTBEAT_SECONDS = 60.0
#: Seconds of completions a throughput estimate looks back over.
THROUGHPUT_WINDOW_SECONDS = 120.0
#: Completions (within the window) needed before a rate, and an ETA from it, is shown.
MIN_COMPLETIONS_FOR_RATE = 2
#: Seconds a window must span before its rate is trusted (a burst of answers in one poll is not a rate).
MIN_SPAN_FOR_RATE = 5.0

Clock = Callable[[], float]

#: Decimal places of a logged USD amount: per-token prices make single requests cost fractions of a
#: cent (``$0.000038``), which fewer places would round to $0.
USD_DECIMALS = 6
#: What a log line says for a cost the vendor did not state.
UNKNOWN_COST = "cost unknown"


def usd(amount: float) -> str:
    """``$0.000038``: a known amount, always with :data:`USD_DECIMALS` places."""
    return f"${amount:.{USD_DECIMALS}f}"


def format_cost(amount: float | None) -> str:
    """``cost $0.000038``, or ``cost unknown`` when the vendor stated none."""
    return UNKNOWN_COST if amount is None else f"cost {usd(amount)}"


def format_total(known: float | None, items_without_cost: int) -> str:
    """A batch's cost: the sum of the stated costs, and how many items stated none."""
    text = format_cost(known)
    if items_without_cost:
        text += f" ({items_without_cost} item{'s' if items_without_cost != 1 else ''} without a stated cost)"
    return text


@dataclass
class Cadence:
    """Whether a progress line is due now: on a change (``min_gap`` apart at least), or on the heartbeat."""

    every: float = HEARTBEAT_SECONDS
    min_gap: float = 0.0
    clock: Clock = time.monotonic
    _said: Hashable = field(default=None, init=False)
    _at: float | None = field(default=None, init=False)

    def due(self, what: Hashable) -> bool:
        """True (and remembered as said) when a line saying ``what`` should be written now."""
        now = self.clock()
        since = None if self._at is None else now - self._at
        changed = since is None or what != self._said
        if (changed and (since is None or since >= self.min_gap)) or (
            since is not None and since >= self.every
        ):
            self._said, self._at = what, now
            return True
        return False


def elapsed(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h01m``: a duration as a person reads it in a log."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class Throughput:
    """Items per second over the last :data:`THROUGHPUT_WINDOW_SECONDS`, from (time, done) samples."""

    window: float = THROUGHPUT_WINDOW_SECONDS
    clock: Clock = time.monotonic
    _samples: deque[tuple[float, int]] = field(default_factory=deque, init=False)

    def add(self, done: int) -> None:
        now = self.clock()
        self._samples.append((now, done))
        # Keep one sample at or before the window's start, so the window is always spanned.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Recent items per second, or None while too few items finished to say."""
        if len(self._samples) < 2:
            return None
        last_at, last_done = self._samples[-1]
        # The window starts at the last sample before its first completion: a wait in a queue before
        # anything finished says nothing of the rate at which items finish once they run.
        first_at, first_done = next(
            (earlier for earlier, later in itertools.pairwise(self._samples) if later[1] > earlier[1]),
            self._samples[0],
        )
        span = last_at - first_at
        finished = last_done - first_done
        if finished < MIN_COMPLETIONS_FOR_RATE or span < MIN_SPAN_FOR_RATE:
            return None
        return finished / span

    def describe(self, done: int, total: int) -> str:
        """``2.4 items/s, about 1m10s left``, or why neither is known yet."""
        remaining = max(0, total - done)
        if not remaining:
            return "all done"
        rate = self.rate()
        if rate is None:
            return "rate not known yet (too few items finished recently)"
        return f"{rate:.1f} items/s, about {elapsed(remaining / rate)} left"


class BatchProgress:
    """A batch's progress lines: on a change of its counts or state, else on the heartbeat."""

    #: On change, but a fast batch still writes at most one line per this many seconds.
    MIN_GAP_SECONDS = 10.0

    def __init__(self, log: object, clock: Clock = time.monotonic) -> None:
        self.log = log
        self.cadence = Cadence(min_gap=self.MIN_GAP_SECONDS, clock=clock)
        self.throughput = Throughput(clock=clock)
        self.clock = clock
        self.started = clock()

    def report(
        self, done: int, failed: int, total: int, state: str | None = None, cost_usd: float | None = None
    ) -> str | None:
        """The line written now, or None when none is due."""
        self.throughput.add(done)
        if not self.cadence.due((done, failed, state)):
            return None
        line = (
            f"batch progress after {elapsed(self.clock() - self.started)}: {done} of {total} done "
            f"({failed} failed), {self.throughput.describe(done, total)}"
            + (f", vendor state {state}" if state else "")
            + (f", {format_cost(cost_usd)} so far" if cost_usd is not None else "")
        )
        self.log.info(line)  # type: ignore[attr-defined]
        return line


class StateProgress:
    """One request's state lines: each change of state at once, else a heartbeat, with elapsed time."""

    def __init__(
        self, log: object, what: str, clock: Clock = time.monotonic, since: float | None = None
    ) -> None:
        self.log = log
        self.what = what
        self.cadence = Cadence(clock=clock)
        self.clock = clock
        self.started = clock() if since is None else since

    def report(self, state: str) -> str | None:
        if not self.cadence.due(state):
            return None
        line = f"{self.what}: {state} after {elapsed(self.clock() - self.started)}"
        self.log.info(line)  # type: ignore[attr-defined]
        return line


# -- links to the vendor's pages -------------------------------------------------------------------


class _XComLink(BaseOperatorLink):
    """A link whose URL the task pushed to XCom under :attr:`xcom_key`."""

    name = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


class VendorRequestLink(_XComLink):
    """ "Vendor request": the vendor's page for the request the task submitted or waited for."""

    name = "Vendor request"


class VendorBatchLink(_XComLink):
    """ "Vendor batch": the vendor's page for a native batch, or its list of a fan-out's requests."""

    name = "Vendor batch"


def push_link(context: Context, link: _XComLink, url: str | None) -> None:
    """Make ``link`` open ``url`` for this task instance (nothing when the vendor has no page)."""
    if url:
        context["ti"].xcom_push(key=link.xcom_key, value=url)


def _conn_id(op: Any) -> str | None:
    partial = getattr(op, "partial_kwargs", None)  # a mapped task keeps its fixed arguments here
    value = partial.get("conn_id") if isinstance(partial, dict) else getattr(op, "conn_id", None)
    return value if isinstance(value, str) else None


#: Vendors found for connection ids in this process; only found ones are kept, so a connection that
#: appears later (defined after a first parse) is looked up again.
_VENDORS: dict[str, str] = {}


def _vendor_of(conn_id: str) -> str | None:
    """The vendor behind ``conn_id`` when the DAG is parsed, or None when that cannot be known."""
    if not conn_id or "{{" in conn_id or "{%" in conn_id:
        return None
    if conn_id in _VENDORS:
        return _VENDORS[conn_id]
    from airflow.sdk import BaseHook

    from airflow_provider_edgeinfer.hooks import HOOKS

    try:
        conn_type = BaseHook.get_connection(conn_id).conn_type
    except Exception:  # not defined where DAGs are parsed: decided when the task runs instead
        return None
    entry = HOOKS.get((conn_type or "").replace("-", "_"))
    if entry is None:
        return None
    _VENDORS[conn_id] = entry[0]
    return entry[0]


def registered(link: _XComLink, capability: str) -> property:
    """An ``operator_extra_links`` holding ``link`` unless the connection's vendor lacks ``capability``."""

    def links(op: Any) -> tuple[BaseOperatorLink, ...]:
        vendor = _vendor_of(_conn_id(op) or "")
        if vendor is None:
            return (link,)
        from airflow_provider_edgeinfer.clients.core import api_classes

        api = api_classes([vendor]).get(vendor)
        return (link,) if api is None or getattr(api, capability) else ()

    return property(links)


__all__ = [
    "HEARTBEAT_SECONDS",
    "UNKNOWN_COST",
    "USD_DECIMALS",
    "BatchProgress",
    "Cadence",
    "StateProgress",
    "Throughput",
    "VendorBatchLink",
    "VendorRequestLink",
    "elapsed",
    "format_cost",
    "format_total",
    "push_link",
    "registered",
    "usd",
]
