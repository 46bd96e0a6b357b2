"""When to send again: the one retry policy and the one transient rule, asked only after a failure.

**Retrying** ("Retrying safely" in the vendor contracts), as small pure functions. A call is
classified by what repeating it could cost (:class:`Safety`); an error is classified by what it
proves about whether the vendor saw the request (:func:`is_retryable`: at once, automatically;
:func:`is_transient`: later, by another poll or round); :func:`failure_of` turns an exchange that
got no complete answer into the provider's error, marked never sent only when it provably never
left this machine. Both sync and async senders build their tenacity retryer from
:func:`retry_kwargs` once a first attempt failed, so the rule exists once and a call that succeeds
at once never asks it.

**Paced retries.** Every sender of one connection waits on the connection's pause before each
attempt (:class:`~airflow_provider_edgeinfer.clients.transport.RateLimiter`, beside the senders it
holds back). :class:`PacedSender` sends calls one attempt at a time through that
pause and, after a failure, retries through tenacity by the policy above: a 429 pauses every sender
of the connection and is never counted as a failure (it says nothing about the request, only "not
now"), and a caller's deadline (a batch's ``timeout``) always wins over a pause.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from pydantic import Field
from pydantic.dataclasses import dataclass
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from airflow_provider_edgeinfer.clients.redact import deadline_reason
from airflow_provider_edgeinfer.exceptions import (
    DEADLINE_EXCEEDED,
    MALFORMED_BODY,
    EdgeInferError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
)

log = logging.getLogger("airflow_provider_edgeinfer.clients")

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call, VendorAPI
    from airflow_provider_edgeinfer.clients.transport import Deadline, RateLimiter


class Safety(enum.Enum):
    """What repeating a call could cost."""

    #: GET, or a call carrying an idempotency key the vendor honours: repeat freely.
    IDEMPOTENT = "idempotent"
    #: A POST that creates billable work without an honoured key: repeat only if provably unseen.
    CREATES_WORK = "creates_work"
    #: Moves money (OmniTensor transfer): never repeated automatically.
    NEVER = "never"


#: Consecutive transient failures (network, 5xx, malformed answers) a poll loop tolerates before it
#: gives up (inference triggers and batch watches alike). A 429 is not one: it pauses the whole
#: connection and only the deadline bounds it.
DEFAULT_MAX_TRANSIENT_FAILURES = 5

#: Statuses that are transient for idempotent calls (409 is Theta's "No instances available").
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetrySettings:
    """Attempts and delays; every hook exposes these through its connection extras.

    The bounds are declared, so pydantic checks them as it builds the settings, as it checks the
    connection extras they come from.
    """

    max_attempts: Annotated[int, Field(ge=1)] = 5
    initial_delay: Annotated[float, Field(ge=0)] = 0.5
    max_delay: Annotated[float, Field(ge=0)] = 30.0
    #: Upper bound of the whole retry sequence, waits included.
    max_total_delay: Annotated[float, Field(ge=0)] = 120.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year like 99999999999 overflows
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(attempt: int, settings: RetrySettings, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter for the wait after ``attempt`` (1-based) failed."""
    ceiling = min(settings.max_delay, settings.initial_delay * 2.0 ** min(max(0, attempt - 1), 62))
    return ceiling * rng()


def is_retryable(error: BaseException, safety: Safety) -> bool:
    """Whether ``error`` from a call of the given safety may be repeated automatically.

    The senders map a maybe-delivered failure of a non-idempotent call to
    :class:`~airflow_provider_edgeinfer.exceptions.OutcomeUnknownError` before this is asked, so a
    ``VendorTimeoutError`` only ever reaches here from an idempotent call.
    """
    if safety is Safety.NEVER:
        return False
    if isinstance(error, VendorConnectionError):
        return True  # never reached the vendor
    if isinstance(error, RateLimitError):
        return True  # refused before any work was done
    if safety is Safety.IDEMPOTENT:
        if isinstance(error, VendorTimeoutError):
            return True
        status = getattr(error, "http_status", None)
        if isinstance(error, VendorAPIError) and status == 408:
            return True  # request timeout: the vendor gave up reading the request
        if isinstance(error, UnexpectedResponseError) and error.code == MALFORMED_BODY:
            return True  # a garbled answer to a read: reading again is free
        return isinstance(error, ServerError) and status in RETRYABLE_STATUSES
    # CREATES_WORK: a 503 that says when to come back was refused before any work started.
    return isinstance(error, ServerError) and error.http_status == 503 and error.retry_after is not None


def is_transient(error: BaseException) -> bool:
    """Whether a failure may pass if the same thing is tried again later, rather than at once.

    The one rule for "later": another poll of a request or a batch (a trigger tolerates a bounded
    run of these), another round of a batch's item (``item_retries``), another read of a paid
    result. No answer, a server error, a 429, or an answer that could not be read: none says
    anything lasting about the request. (Whether a call may be repeated *now*, automatically, is
    :func:`is_retryable`'s question: it also weighs what repeating could cost.)
    """
    return isinstance(error, TransportError | ServerError | RateLimitError | UnexpectedResponseError)


def announce_retries(what: str, settings: RetrySettings) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` that logs what failed, the wait and which attempt comes next."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s: %s; retrying in %.1fs (attempt %d of %d)",
            what,
            error,
            state.upcoming_sleep,
            state.attempt_number + 1,
            settings.max_attempts,
        )

    return before_sleep


# -- what a failed exchange proves ---------------------------------------------------------------

#: httpx errors raised before a single byte of the request left this machine.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _never_sent(exc: httpx.TransportError) -> bool:
    """Whether ``exc`` proves the request never left this machine (so repeating it costs nothing)."""
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("aiohttp"):
        # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, including a server that
        # hung up mid-answer; aiohttp's own class tells the two apart.
        import aiohttp

        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, _NEVER_SENT)


def failure_of(
    api: VendorAPI,
    call: Call[Any],
    exc: BaseException,
    secrets: tuple[str, ...],
    deadline: Deadline | None = None,
) -> EdgeInferError:
    """A call with no complete answer, as the provider's error told from safe parts (every sender)."""
    if deadline is not None and deadline.passed:
        return api.transport_error(
            call,
            exc,
            secrets,
            never_sent=False,
            reason=deadline_reason(deadline.seconds, "call_deadline"),
            code=DEADLINE_EXCEEDED,
        )
    never_sent = isinstance(exc, httpx.TransportError) and _never_sent(exc)
    if not never_sent and type(exc).__module__.startswith("aiohttp"):
        import aiohttp

        # aiohttp's own errors: the lean sender's, and those httpx-aiohttp did not map (a malformed answer).
        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return api.transport_error(call, exc, secrets, never_sent=never_sent)


def wait_seconds(error: BaseException | None, attempt: int, settings: RetrySettings) -> float:
    """The wait before the next attempt: the vendor's ``Retry-After`` wins over backoff."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), settings.max_total_delay)
    return backoff_delay(attempt, settings)


def retry_kwargs(
    safety: Safety,
    settings: RetrySettings,
    *,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``, identical for both."""

    def _wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return wait_seconds(error, state.attempt_number, settings)

    kwargs: dict[str, Any] = {
        "retry": retry_if_exception(lambda exc: is_retryable(exc, safety)),
        "stop": stop_after_attempt(settings.max_attempts) | stop_after_delay(settings.max_total_delay),
        "wait": _wait,
        "reraise": True,
    }
    if before_sleep is not None:
        kwargs["before_sleep"] = before_sleep
    return kwargs


class DeadlinePassed(Exception):
    """The caller's deadline came before the call could be sent (paused, or waiting to retry)."""


class PacedSender:
    """Sends calls through ``send_once`` (one attempt each), paced by ``limiter``, until ``deadline``.

    Before every attempt it waits out the connection's pause. A 429 pauses every sender of the
    limiter and is retried without counting against ``retry.max_attempts``; any other failure is
    retried as the one retry policy allows (:func:`~.retry.is_retryable`, backoff with jitter),
    and one carrying a ``Retry-After`` (a 503 that says when to come back) pauses everyone too.
    Nothing waits past ``deadline`` (epoch seconds): :class:`DeadlinePassed` says it came first.
    ``api`` is the client's, so a sender stands in for the client wherever calls are built.
    """

    def __init__(
        self,
        send_once: Callable[[Any], Awaitable[Any]],
        limiter: RateLimiter,
        retry: RetrySettings,
        *,
        api: Any = None,
        deadline: float = math.inf,
    ) -> None:
        self._send_once = send_once
        self.limiter = limiter
        self.retry = retry
        self.api = api
        self.deadline = deadline

    @classmethod
    def of(cls, client: Any, *, deadline: float = math.inf) -> PacedSender:
        """A paced sender over a transport client, sharing that client's limiter."""
        from airflow_provider_edgeinfer.clients.transport import limiter_for

        return cls(
            client.send_once, limiter_for(client), client.settings.retry, api=client.api, deadline=deadline
        )

    async def send(self, call: Any) -> Any:
        # Most sends succeed at once: they cost a look at the pause and the send. Tenacity's
        # machinery (tens of microseconds a call, a fan-out's whole margin) starts at a failure.
        sent_at = await self._ready()
        try:
            answer = await self._send_once(call)
        except Exception as exc:
            return await self._retried(call, exc, sent_at)
        self.limiter.succeeded()
        return answer

    async def _ready(self) -> float:
        """Wait out the pause; the limiter's clock at the send, or :class:`DeadlinePassed`."""
        sent_at = await self.limiter.wait(self.deadline)
        if time.time() >= self.deadline:
            raise DeadlinePassed("the deadline came before the call could be sent")
        return sent_at

    async def _retried(self, call: Any, failed: Exception, sent_at: float) -> Any:
        """The retries after ``failed``, the first attempt's error, which tenacity judges first."""
        failures = 0
        first: list[Exception] = [failed]

        def counted(state: RetryCallState) -> None:
            nonlocal failures
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, RateLimitError):
                self.limiter.throttled(error.retry_after, sent_at=sent_at)
                return  # "not now" from the vendor: no failure of the call
            failures += 1
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None:
                self.limiter.throttled(retry_after, sent_at=sent_at)

        def stop(state: RetryCallState) -> bool:
            return failures >= self.retry.max_attempts

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, RateLimitError) or getattr(error, "retry_after", None) is not None:
                return 0.0  # the limiter holds the next attempt, and every other sender's
            return max(0.0, min(backoff_delay(failures, self.retry), self.deadline - time.time()))

        def retryable(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome is not None else None
            # A 429 was refused before any work was done: sending again later is always safe.
            return isinstance(error, RateLimitError) or (
                error is not None and is_retryable(error, call.safety)
            )

        retrying = AsyncRetrying(retry=retryable, stop=stop, wait=wait, after=counted, reraise=True)
        async for attempt in retrying:
            with attempt:
                if first:
                    raise first.pop()  # the attempt already made, judged like any other
                sent_at = await self._ready()
                answer = await self._send_once(call)
                self.limiter.succeeded()
                return answer
        raise AssertionError("unreachable: tenacity re-raises the last error")
