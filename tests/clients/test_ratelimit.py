"""The one rate limiter of a connection, and the paced sender every batch send and read goes through.

A 429 is "not now" from the vendor: it pauses every sender sharing the limiter and is never counted
as a failure; the caller's deadline always ends a pause. No real time passes: the limiter runs on a
fake clock, and a 429 is retried without a backoff wait of its own.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_edgeinfer.clients.retry import (
    DeadlinePassed,
    PacedSender,
    RetrySettings,
    Safety,
    is_transient,
)
from airflow_provider_edgeinfer.clients.transport import RateLimiter, limiter_for
from airflow_provider_edgeinfer.exceptions import (
    InputValidationError,
    JobFailedError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorConnectionError,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _call(safety: Safety = Safety.IDEMPOTENT) -> Any:
    return SimpleNamespace(safety=safety, operation="thing.get")


def _no_backoff(max_attempts: int) -> RetrySettings:
    return RetrySettings(max_attempts=max_attempts, initial_delay=0.0, max_delay=0.0)


class Scripted:
    """``send_once`` answering from a script: an exception is raised, anything else returned."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.sent = 0

    async def __call__(self, call: Any) -> Any:
        self.sent += 1
        answer = self.script.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _429(retry_after: float | None = None) -> RateLimitError:
    return RateLimitError("slow down", http_status=429, retry_after=retry_after)


# -- the limiter on its own ------------------------------------------------------------------------


async def test_limiter_honours_retry_after_and_backs_off_without_it() -> None:
    t = FakeTime()
    limiter = RateLimiter(initial_pause=1.0, max_pause=8.0, clock=t.clock, sleep=t.sleep)
    await limiter.wait()
    assert t.slept == []
    assert limiter.throttled(2.5) == 2.5
    await limiter.wait()
    assert t.slept == [2.5]
    assert [limiter.throttled(None) for _ in range(4)] == [2.0, 4.0, 8.0, 8.0]  # 2nd..5th in a row
    limiter.succeeded()
    assert limiter.throttled(None) == 1.0
    assert limiter.throttled(1000.0) == 8.0  # capped


async def test_limiter_pause_is_never_shortened() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    limiter.throttled(10.0)
    limiter.throttled(1.0)
    assert limiter.paused_for == 10.0
    await limiter.wait()
    assert t.now == 110.0


async def test_many_senders_refused_together_back_off_once() -> None:
    t = FakeTime()
    limiter = RateLimiter(initial_pause=1.0, max_pause=300.0, clock=t.clock, sleep=t.sleep)
    sent_at = [await limiter.wait() for _ in range(16)]  # sixteen requests in flight at once
    pauses = [limiter.throttled(None, sent_at=s) for s in sent_at]
    assert pauses == [1.0] * 16, "one refusal of a burst is one strike, not sixteen"
    assert limiter.throttled_count == 16
    later = await limiter.wait()
    assert limiter.throttled(None, sent_at=later) == 2.0  # refused again after the pause: it grows


async def test_a_pause_ends_at_the_callers_deadline() -> None:
    limiter = RateLimiter()
    limiter.throttled(999_999_999.0)
    started = time.monotonic()
    await asyncio.wait_for(limiter.wait(deadline=time.time() + 0.01), timeout=5)
    assert time.monotonic() - started < 5
    assert limiter.paused_for > 200, "the pause (capped at 300 s) stays for everyone else"


class FakeClient:
    def __init__(self, send_once: Any = None) -> None:
        self.send_once = send_once
        self.settings = SimpleNamespace(retry=_no_backoff(1))
        self.api = "the api"


def test_every_user_of_one_client_shares_its_limiter() -> None:
    one, other = FakeClient(), FakeClient()
    assert limiter_for(one) is limiter_for(one)
    assert limiter_for(one) is not limiter_for(other)


# -- the one transient rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (VendorConnectionError("no route"), True),
        (ServerError("boom", http_status=502), True),
        (_429(), True),
        (UnexpectedResponseError("garbled"), True),
        (InputValidationError("bad input"), False),
        (JobFailedError("failed"), False),
        (ValueError("not ours"), False),
    ],
)
def test_one_transient_rule(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


# -- the paced sender ---------------------------------------------------------------------------------


async def test_a_429_is_never_counted_as_a_failed_attempt() -> None:
    send_once = Scripted(*[_429(0.0) for _ in range(7)], "answer")
    sender = PacedSender(send_once, RateLimiter(), _no_backoff(max_attempts=2))
    assert await sender.send(_call(Safety.CREATES_WORK)) == "answer"
    assert send_once.sent == 8
    assert sender.limiter.throttled_count == 7


async def test_other_failures_count_up_to_max_attempts() -> None:
    send_once = Scripted(ServerError("a", http_status=502), ServerError("b", http_status=502), "answer")
    sender = PacedSender(send_once, RateLimiter(), _no_backoff(max_attempts=2))
    with pytest.raises(ServerError, match="b"):
        await sender.send(_call())
    assert send_once.sent == 2


async def test_a_429_between_failures_does_not_use_up_an_attempt() -> None:
    send_once = Scripted(ServerError("a", http_status=502), _429(0.0), _429(0.0), "answer")
    sender = PacedSender(send_once, RateLimiter(), _no_backoff(max_attempts=2))
    assert await sender.send(_call()) == "answer"


async def test_a_failure_that_may_not_be_repeated_is_raised_at_once() -> None:
    send_once = Scripted(ServerError("boom", http_status=500), "answer")
    sender = PacedSender(send_once, RateLimiter(), _no_backoff(max_attempts=5))
    with pytest.raises(ServerError):
        await sender.send(_call(Safety.CREATES_WORK))  # may have created work: never repeated
    assert send_once.sent == 1


async def test_a_retry_after_pauses_every_other_sender_of_the_limiter() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    refused = PacedSender(Scripted(_429(30.0), "a"), limiter, _no_backoff(5))
    other_send = Scripted("b")
    other = PacedSender(other_send, limiter, _no_backoff(5))
    assert await refused.send(_call()) == "a"
    assert t.slept == [30.0] and t.now == 130.0
    before = t.now
    assert await other.send(_call()) == "b"
    assert t.now == before, "the pause is over: the other sender goes at once"

    # While a pause is in force, a sender that was never refused waits it out before sending.
    limiter.throttled(12.0)
    other_send.script.append("c")
    assert await other.send(_call()) == "c"
    assert t.slept[-1] == 12.0


async def test_a_503_with_retry_after_pauses_everyone_and_counts_as_a_failure() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    busy = ServerError("busy", http_status=503, retry_after=4.0)
    send_once = Scripted(busy, busy, "never sent")
    sender = PacedSender(send_once, limiter, _no_backoff(max_attempts=2))
    with pytest.raises(ServerError):
        await sender.send(_call(Safety.CREATES_WORK))
    assert send_once.sent == 2
    assert limiter.paused_for == 4.0


async def test_nothing_waits_past_the_deadline() -> None:
    limiter = RateLimiter()
    send_once = Scripted(_429(999_999_999.0), "too late")
    sender = PacedSender(send_once, limiter, _no_backoff(5), deadline=time.time() + 0.01)
    with pytest.raises(DeadlinePassed):
        await asyncio.wait_for(sender.send(_call()), timeout=5)
    assert send_once.sent == 1


async def test_a_sender_over_a_client_shares_the_clients_limiter() -> None:
    client = FakeClient(Scripted("x"))
    sender = PacedSender.of(client)
    assert sender.limiter is limiter_for(client)
    assert sender.api == "the api"
    assert await sender.send(_call()) == "x"
