"""The retry policy as a table: which try, what came back → when next, or done, or dead."""

from __future__ import annotations

import random

import pytest

from gateway.models import AttemptResult, DeliveryStatus
from gateway.outbox.retry import RetryPolicy, retry_after

SVIX = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
NOW = 1000.0


def result(status: int | None, error: str | None = None) -> AttemptResult:
    return AttemptResult(started_at=NOW, duration_ms=1.0, status_code=status, error=error)


@pytest.mark.parametrize(
    ("attempt", "outcome", "status", "delay"),
    [
        (1, result(200), DeliveryStatus.SUCCEEDED, None),
        (1, result(204), DeliveryStatus.SUCCEEDED, None),
        (1, result(500), DeliveryStatus.PENDING, 5.0),
        (2, result(404), DeliveryStatus.PENDING, 300.0),
        (3, result(None, "timed out"), DeliveryStatus.PENDING, 1800.0),
        (4, result(301), DeliveryStatus.PENDING, 7200.0),
        (7, result(503), DeliveryStatus.PENDING, 36000.0),
        (8, result(500), DeliveryStatus.FAILED, None),
        (8, result(200), DeliveryStatus.SUCCEEDED, None),
        (12, result(500), DeliveryStatus.FAILED, None),
    ],
)
def test_schedule_without_jitter(
    attempt: int, outcome: AttemptResult, status: DeliveryStatus, delay: float | None
) -> None:
    decision = RetryPolicy(SVIX, jitter=0).decide(attempt, outcome, NOW)
    assert decision.status is status
    expected = None if delay is None else NOW + delay
    assert decision.next_attempt_at == expected


def test_jitter_stays_within_twenty_percent_and_varies() -> None:
    policy = RetryPolicy(SVIX, jitter=0.2, rng=random.Random(7))
    delays = [policy.decide(2, result(500), NOW).next_attempt_at - NOW for _ in range(200)]  # type: ignore[operator]
    assert all(240.0 <= d <= 360.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100


def test_410_gone_is_dead_at_once_and_disables_the_endpoint() -> None:
    decision = RetryPolicy(SVIX, jitter=0).decide(1, result(410), NOW)
    assert decision.status is DeliveryStatus.FAILED
    assert decision.disable_endpoint == "the receiver answered 410 Gone"  # shown as the reason


def throttled(status: int, retry_after: str) -> AttemptResult:
    return AttemptResult(
        started_at=NOW,
        duration_ms=1.0,
        status_code=status,
        response_headers={"Retry-After": retry_after},
    )


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "delay"),
    [
        (503, "400", 2, 400.0),  # within [300, 600]: honoured
        (503, "10", 2, 300.0),  # shorter than scheduled: the schedule wins
        (503, "100000", 2, 600.0),  # clamped to twice the scheduled delay
        (503, "invalid", 2, 300.0),  # ignored
        (503, "Thu, 01 Jan 1970 00:00:01 GMT", 2, 300.0),  # a date in the past: ignored
        (429, "120", 1, 60.0),  # clamp gives [5, 10]; a 429 waits at least 60 s
        (429, "3000", 3, 3000.0),
        (503, "100000", 7, 72000.0),
        (500, "400", 2, 300.0),  # only 429 and 503 are read
    ],
)
def test_retry_after_is_honoured_within_bounds(
    status: int, retry_after: str, attempt: int, delay: float
) -> None:
    decision = RetryPolicy(SVIX, jitter=0).decide(attempt, throttled(status, retry_after), NOW)
    assert decision.next_attempt_at == NOW + delay


def test_retry_after_as_an_http_date() -> None:
    when = "Thu, 01 Jan 1970 00:23:20 GMT"  # NOW + 400 s
    decision = RetryPolicy(SVIX, jitter=0).decide(2, throttled(503, when), NOW)
    assert decision.next_attempt_at == NOW + 400.0


def test_a_timeout_waits_at_least_a_minute() -> None:
    timed_out = AttemptResult(started_at=NOW, duration_ms=1.0, error="timed out", timed_out=True)
    assert RetryPolicy(SVIX, jitter=0).decide(1, timed_out, NOW).next_attempt_at == NOW + 60.0
    assert RetryPolicy(SVIX, jitter=0).decide(3, timed_out, NOW).next_attempt_at == NOW + 1800.0


def test_an_endpoint_schedule_overrides_the_default() -> None:
    policy = RetryPolicy(SVIX, jitter=0)
    assert policy.decide(1, result(500), NOW, schedule=(1.0, 2.0)).next_attempt_at == NOW + 1.0
    assert policy.decide(3, result(500), NOW, schedule=(1.0, 2.0)).status is DeliveryStatus.FAILED


def test_delays_never_exceed_a_day() -> None:
    policy = RetryPolicy((200000.0,), jitter=0)
    assert policy.decide(1, result(500), NOW).next_attempt_at == NOW + 86400.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("0.5", 0.5),
        (" 120 ", 120.0),
        ("Thu, 01 Jan 1970 00:16:50 GMT", 10.0),  # NOW + 10 s
        ("-5", None),  # in the past
        ("Thu, 01 Jan 1970 00:16:30 GMT", None),  # NOW - 10 s
        ("nan", None),
        ("soon", None),
    ],
)
def test_retry_after_reads_seconds_or_a_date_and_refuses_the_rest(
    header: str, seconds: float | None
) -> None:
    assert retry_after({"Retry-After": header}, NOW) == seconds
    assert retry_after({}, NOW) is None
