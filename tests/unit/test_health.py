"""The endpoint health policy: failure streaks, the circuit breaker, disabling, recovery."""

from __future__ import annotations

import pytest

from gateway import models
from gateway.outbox.health import Health, after_attempt
from gateway.store import base

NOW = 1_000.0
POLICY = base.HealthPolicy(
    circuit_failure_threshold=3, circuit_cooldown_seconds=60, disable_after_seconds=3600
)
FAILED = models.AttemptResult(started_at=NOW, duration_ms=1, status_code=500)
OK = models.AttemptResult(started_at=NOW, duration_ms=1, status_code=200)
HEALTHY = Health(0, None, None, None)


def outcome(result: models.AttemptResult, disable: str | None = None) -> base.AttemptOutcome:
    return base.AttemptOutcome(
        result, models.DeliveryStatus.PENDING, disable_endpoint=disable, health=POLICY
    )


def test_a_success_on_a_healthy_endpoint_changes_nothing() -> None:
    assert after_attempt(HEALTHY, outcome(OK), NOW) == (None, None)


@pytest.mark.parametrize(
    ("before", "after", "announced"),
    [
        (HEALTHY, Health(1, NOW, None, None), None),
        (Health(1, NOW - 5, None, None), Health(2, NOW - 5, None, None), None),
        (
            Health(2, NOW - 5, None, None),
            Health(3, NOW - 5, NOW + 60, None),
            base.HealthChange("endpoint.circuit_opened", "3 failures in a row"),
        ),
        (Health(3, NOW - 5, NOW - 1, None), Health(4, NOW - 5, NOW + 60, None), None),
        (
            Health(5, NOW - 3600, NOW, None),
            Health(6, NOW - 3600, NOW + 60, "failing continuously for 1 h"),
            base.HealthChange("endpoint.disabled", "failing continuously for 1 h"),
        ),
        (Health(6, NOW - 9000, NOW, "gone"), Health(7, NOW - 9000, NOW + 60, "gone"), None),
    ],
)
def test_failures_build_a_streak_open_the_circuit_then_disable(
    before: Health, after: Health, announced: base.HealthChange | None
) -> None:
    assert after_attempt(before, outcome(FAILED), NOW) == (after, announced)


def test_the_receiver_can_disable_the_endpoint_at_once() -> None:
    changed, change = after_attempt(HEALTHY, outcome(FAILED, disable="410 Gone"), NOW)
    assert changed == Health(1, NOW, None, "410 Gone")
    assert change == base.HealthChange("endpoint.disabled", "410 Gone")


@pytest.mark.parametrize(("streak", "recovered"), [(2, False), (3, True), (9, True)])
def test_a_success_ends_the_streak(streak: int, recovered: bool) -> None:
    changed, change = after_attempt(Health(streak, NOW - 9, NOW + 9, "paused?"), outcome(OK), NOW)
    assert changed == Health(0, None, None, "paused?")
    assert (change is not None) is recovered
