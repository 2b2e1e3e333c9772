"""The retry policy as a table: which try, what came back → when next, or done, or dead."""

from __future__ import annotations

import random

import pytest

from gateway.models import AttemptResult, DeliveryStatus
from gateway.outbox.retry import RetryPolicy

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
