"""One shared pause per connection and event loop, set by the vendor's 429 answers.

Every poll of a connection waits on the same :class:`RateLimiter`, so one 429 slows the whole fleet
of that connection at once, for as long as the vendor's ``Retry-After`` asks, instead of each
trigger backing off on its own and the others carrying on at full rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: Backoff when a 429 carries no Retry-After: first pause, doubled per 429 in a row, up to the cap.
INITIAL_PAUSE = 1.0
MAX_PAUSE = 300.0


class RateLimiter:
    """A pause every caller waits out before sending; 429s extend it, a success resets the backoff."""

    def __init__(
        self,
        *,
        initial_pause: float = INITIAL_PAUSE,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._initial = initial_pause
        self._max = max_pause
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0
        self._strikes = 0
        #: 429s seen (benchmarks and tests read it).
        self.throttled_count = 0

    @property
    def paused_for(self) -> float:
        """Seconds until sending may resume (0 when not paused)."""
        return max(0.0, self._resume_at - self._clock())

    def throttled(self, retry_after: float | None) -> float:
        """Record a 429; returns the pause it imposes on every caller.

        The vendor's ``Retry-After`` wins (capped at ``max_pause``); without one the pause doubles
        with each 429 in a row. A pause is only ever extended, never shortened, by a later 429.
        """
        self._strikes += 1
        self.throttled_count += 1
        if retry_after is not None:
            pause = min(max(0.0, retry_after), self._max)
        else:
            pause = min(self._max, self._initial * 2.0 ** min(self._strikes - 1, 30))
        self._resume_at = max(self._resume_at, self._clock() + pause)
        return pause

    def succeeded(self) -> None:
        self._strikes = 0

    async def wait(self) -> None:
        """Return once no pause is in force (at once when there is none)."""
        while (delay := self._resume_at - self._clock()) > 0:
            await self._sleep(delay)


__all__ = ["RateLimiter"]
