"""The retry policy as pure functions."""

from __future__ import annotations

import email.utils
import time

import pytest
from tenacity import RetryCallState, Retrying

from airflow_provider_edgeinfer.clients import retry
from airflow_provider_edgeinfer.clients.retry import (
    RETRYABLE_STATUSES,
    RetrySettings,
    Safety,
    backoff_delay,
    is_retryable,
    parse_retry_after,
    retry_kwargs,
    wait_seconds,
)
from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    AuthenticationError,
    ConflictError,
    EdgeInferError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
    VendorValidationError,
)

NOW = 1_700_000_000.0


# -- parse_retry_after ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("-3", 0.0),  # a negative delay means "now", never a negative sleep
    ],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "12 seconds", "inf", "nan", "-inf", "Mon, 99 Foo"]
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_http_date_in_future() -> None:
    header = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(header, now=NOW) == pytest.approx(30.0)


def test_parse_retry_after_http_date_minus_zero_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # "-0000" yields a naive datetime; HTTP dates are always UTC, whatever the local zone is.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        header = email.utils.formatdate(NOW + 45, usegmt=True).replace("GMT", "-0000")
        assert parse_retry_after(header, now=NOW) == pytest.approx(45.0)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_retry_after_keeps_a_date_s_own_offset() -> None:
    # Only a zone-less date is taken as UTC; "+0200" is two hours ahead of it.
    assert parse_retry_after("Wed, 21 Oct 2015 09:28:00 +0200", now=1445412480.0) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 09:28:00 +0200", now=1445412480.0 - 60) == 60.0


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 99999999999 07:28:00 GMT",
        "Wed, 21 Oct 2015 25:61:61 GMT",
        "Wed, 32 Oct 2015 07:28:00 GMT",
    ],
)
def test_parse_retry_after_a_hostile_date_is_none(value: str) -> None:
    # A vendor's header must never crash error mapping (the huge year once raised OverflowError).
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_http_date_in_past_is_zero() -> None:
    header = email.utils.formatdate(NOW - 300, usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


# -- backoff_delay ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_backoff_delay_ceiling_grows_and_is_capped(attempt: int, ceiling: float) -> None:
    settings = RetrySettings(initial_delay=0.5, max_delay=30.0)
    assert backoff_delay(attempt, settings, rng=lambda: 1.0) == pytest.approx(ceiling)
    assert backoff_delay(attempt, settings, rng=lambda: 0.0) == 0.0
    assert backoff_delay(attempt, settings, rng=lambda: 0.5) == pytest.approx(ceiling / 2)


def test_backoff_delay_zero_initial_delay_never_waits() -> None:
    settings = RetrySettings(initial_delay=0)
    assert all(backoff_delay(a, settings, rng=lambda: 1.0) == 0.0 for a in range(1, 20))


def test_backoff_delay_uses_the_rng_within_bounds() -> None:
    settings = RetrySettings(initial_delay=1.0, max_delay=8.0)
    delays = [backoff_delay(3, settings) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1  # jitter


# -- is_retryable -----------------------------------------------------------------------------------


def _api_error(cls: type[VendorAPIError], status: int, retry_after: float | None = None) -> VendorAPIError:
    return cls("boom", vendor="v", http_status=status, retry_after=retry_after)


ERRORS: dict[str, BaseException] = {
    "connect": VendorConnectionError("unreachable", vendor="v"),
    "read_timeout": VendorTimeoutError("slow", vendor="v"),
    "outcome_unknown": OutcomeUnknownError("lost", vendor="v"),
    "408": _api_error(VendorAPIError, 408),
    "409_capacity": _api_error(ServerError, 409),
    "409_conflict": _api_error(ConflictError, 409),
    "429": _api_error(RateLimitError, 429),
    "429_retry_after": _api_error(RateLimitError, 429, retry_after=2.0),
    "500": _api_error(ServerError, 500),
    "501": _api_error(ServerError, 501),
    "502": _api_error(ServerError, 502),
    "503": _api_error(ServerError, 503),
    "503_retry_after": _api_error(ServerError, 503, retry_after=1.0),
    "504": _api_error(ServerError, 504),
    "400": _api_error(VendorValidationError, 400),
    "401": _api_error(AuthenticationError, 401),
    "402": _api_error(QuotaExceededError, 402),
    "404": _api_error(NotFoundError, 404),
    "malformed": UnexpectedResponseError("bad json", vendor="v"),
    "plain": EdgeInferError("other"),
    "foreign": ValueError("not ours"),
}

RETRIED: dict[Safety, set[str]] = {
    Safety.IDEMPOTENT: {
        "connect",
        "read_timeout",
        "408",
        "409_capacity",
        "429",
        "429_retry_after",
        "500",
        "502",
        "503",
        "503_retry_after",
        "504",
    },
    # Only what provably never reached the server: connect error, 429, 503 with Retry-After.
    Safety.CREATES_WORK: {"connect", "429", "429_retry_after", "503_retry_after"},
    Safety.NEVER: set(),
}


@pytest.mark.parametrize("safety", list(Safety))
@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_is_retryable_table(safety: Safety, kind: str) -> None:
    assert is_retryable(ERRORS[kind], safety) is (kind in RETRIED[safety])


def test_retryable_statuses_are_the_documented_ones() -> None:
    assert frozenset({408, 409, 429, 500, 502, 503, 504}) == RETRYABLE_STATUSES


# -- wait_seconds -----------------------------------------------------------------------------------


def test_wait_seconds_prefers_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "backoff_delay", lambda *a, **k: pytest.fail("backoff used"))
    settings = RetrySettings(initial_delay=10.0)
    assert wait_seconds(_api_error(RateLimitError, 429, retry_after=3.0), 1, settings) == 3.0
    assert wait_seconds(_api_error(RateLimitError, 429, retry_after=0.0), 4, settings) == 0.0


def test_wait_seconds_caps_retry_after() -> None:
    settings = RetrySettings(max_total_delay=20.0)
    assert wait_seconds(_api_error(RateLimitError, 429, retry_after=3600.0), 1, settings) == 20.0


def test_wait_seconds_falls_back_to_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake(attempt: int, settings: RetrySettings) -> float:
        calls.append(attempt)
        return 0.25

    monkeypatch.setattr(retry, "backoff_delay", fake)
    assert wait_seconds(_api_error(ServerError, 500), 3, RetrySettings()) == 0.25
    assert wait_seconds(None, 2, RetrySettings()) == 0.25
    assert calls == [3, 2]


# -- RetrySettings ----------------------------------------------------------------------------------


def test_retry_settings_defaults() -> None:
    s = RetrySettings()
    assert (s.max_attempts, s.initial_delay, s.max_delay, s.max_total_delay) == (5, 0.5, 30.0, 120.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"initial_delay": -0.1},
        {"max_delay": -1},
        {"max_total_delay": -5},
    ],
)
def test_retry_settings_rejects_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySettings(**kwargs)  # type: ignore[arg-type]


def test_retry_settings_accepts_zero_delays_and_one_attempt() -> None:
    s = RetrySettings(max_attempts=1, initial_delay=0, max_delay=0, max_total_delay=0)
    assert s.max_attempts == 1


def test_retry_kwargs_shape() -> None:
    settings = RetrySettings(max_attempts=3, initial_delay=0)
    kwargs = retry_kwargs(Safety.CREATES_WORK, settings)
    assert kwargs["reraise"] is True
    assert "before_sleep" not in kwargs
    assert kwargs["retry"].predicate(ERRORS["connect"]) is True
    assert kwargs["retry"].predicate(ERRORS["500"]) is False
    hook = object()
    assert retry_kwargs(Safety.NEVER, settings, before_sleep=hook)["before_sleep"] is hook  # type: ignore[arg-type]


# -- what the retryer is built from ----------------------------------------------------------------


def _state(attempt: int, elapsed: float, error: BaseException | None = None) -> RetryCallState:
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.start_time = 1000.0
    state.outcome_timestamp = 1000.0 + elapsed
    if error is not None:
        state.set_exception((type(error), error, None))
    return state


@pytest.mark.parametrize(
    ("attempt", "elapsed", "stops"),
    [(1, 0.0, False), (2, 59.9, False), (3, 0.0, True), (4, 1.0, True), (1, 60.0, True), (2, 600.0, True)],
)
def test_retry_kwargs_stop_after_attempts_or_total_delay(attempt: int, elapsed: float, stops: bool) -> None:
    kwargs = retry_kwargs(Safety.IDEMPOTENT, RetrySettings(max_attempts=3, max_total_delay=60.0))
    assert kwargs["stop"](_state(attempt, elapsed)) is stops


def test_retry_kwargs_wait_reads_the_failed_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def fake(attempt: int, settings: RetrySettings) -> float:
        seen.append(attempt)
        return 0.125

    monkeypatch.setattr(retry, "backoff_delay", fake)
    wait = retry_kwargs(Safety.IDEMPOTENT, RetrySettings())["wait"]
    assert wait(_state(2, 1.0, _api_error(RateLimitError, 429, retry_after=7.0))) == 7.0
    assert wait(_state(3, 1.0, _api_error(ServerError, 500))) == 0.125
    assert wait(_state(4, 1.0)) == 0.125  # no outcome yet: plain backoff
    assert seen == [3, 4]


def test_retry_kwargs_retry_follows_the_safety() -> None:
    settings = RetrySettings()
    malformed = UnexpectedResponseError("garbled", vendor="v", code=MALFORMED_BODY)
    assert retry_kwargs(Safety.IDEMPOTENT, settings)["retry"].predicate(malformed) is True
    assert retry_kwargs(Safety.CREATES_WORK, settings)["retry"].predicate(malformed) is False
    assert retry_kwargs(Safety.NEVER, settings)["retry"].predicate(ERRORS["connect"]) is False


def test_a_garbled_answer_is_read_again_only_when_reading_is_free() -> None:
    malformed = UnexpectedResponseError("garbled", vendor="v", code=MALFORMED_BODY)
    other = UnexpectedResponseError("unknown state", vendor="v", code="OTHER")
    assert is_retryable(malformed, Safety.IDEMPOTENT) is True
    assert is_retryable(malformed, Safety.CREATES_WORK) is False
    assert is_retryable(malformed, Safety.NEVER) is False
    assert is_retryable(other, Safety.IDEMPOTENT) is False


def test_a_503_without_retry_after_is_not_repeated_for_paid_work() -> None:
    assert is_retryable(_api_error(ServerError, 503), Safety.CREATES_WORK) is False
    assert is_retryable(_api_error(ServerError, 502, retry_after=1.0), Safety.CREATES_WORK) is False
    assert is_retryable(_api_error(ServerError, 503, retry_after=0.0), Safety.CREATES_WORK) is True


def test_backoff_exponent_stops_growing_so_it_never_overflows() -> None:
    # Without a cap on the exponent, 2.0 ** 10_000 raises OverflowError; with max_delay unbounded
    # the ceiling shows where the exponent stops: 2 ** 62 times the initial delay.
    settings = RetrySettings(initial_delay=1.0, max_delay=float("inf"))
    assert backoff_delay(10_000, settings, rng=lambda: 1.0) == 2.0**62
    assert backoff_delay(63, settings, rng=lambda: 1.0) == 2.0**62
    assert backoff_delay(62, settings, rng=lambda: 1.0) == 2.0**61


@pytest.mark.parametrize("attempt", [0, -3])
def test_backoff_before_a_first_attempt_uses_the_initial_delay(attempt: int) -> None:
    assert backoff_delay(attempt, RetrySettings(initial_delay=0.5), rng=lambda: 1.0) == 0.5


def test_parse_retry_after_without_now_uses_the_clock() -> None:
    header = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert parse_retry_after(header) == pytest.approx(120.0, abs=2.0)
