"""The one retry policy ("Retrying safely" in the vendor contracts), as small pure functions.

A call is classified by what repeating it could cost (:class:`Safety`); an error is classified by
what it proves about whether the vendor saw the request. Both sync and async senders build their
tenacity retryer from :func:`retry_kwargs`, so the rule exists once.
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
)


class Safety(enum.Enum):
    """What repeating a call could cost."""

    #: GET, or a call carrying an idempotency key the vendor honours: repeat freely.
    IDEMPOTENT = "idempotent"
    #: A POST that creates billable work without an honoured key: repeat only if provably unseen.
    CREATES_WORK = "creates_work"
    #: Moves money (OmniTensor transfer): never repeated automatically.
    NEVER = "never"


#: Statuses that are transient for idempotent calls (409 is Theta's "No instances available").
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetrySettings:
    """Attempts and delays; every hook exposes these through its connection extras."""

    max_attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 30.0
    #: Upper bound of the whole retry sequence, waits included.
    max_total_delay: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.initial_delay, self.max_delay, self.max_total_delay) < 0:
            raise ValueError("retry delays must not be negative")


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
