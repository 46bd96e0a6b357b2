"""Progress lines in task and triggerer logs: when one is due, what a batch's throughput is, and money.

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
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

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


__all__ = [
    "HEARTBEAT_SECONDS",
    "UNKNOWN_COST",
    "USD_DECIMALS",
    "BatchProgress",
    "Cadence",
    "StateProgress",
    "Throughput",
    "elapsed",
    "format_cost",
    "format_total",
    "usd",
]
