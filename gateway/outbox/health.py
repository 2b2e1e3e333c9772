"""Endpoint health: failure streaks, the circuit breaker and disabling. Pure, so a store only
persists what it decides, in the same transaction as the attempt that caused it."""

from __future__ import annotations

import dataclasses

from gateway.store import base


@dataclasses.dataclass(frozen=True)
class Health:
    """The health columns of one endpoint."""

    consecutive_failures: int
    failing_since: float | None
    circuit_open_until: float | None
    disabled_reason: str | None


def after_attempt(
    health: Health, outcome: base.AttemptOutcome, now: float
) -> tuple[Health | None, base.HealthChange | None]:
    """The endpoint's health after one attempt (None: unchanged), and the change to announce."""
    policy = outcome.health
    assert policy is not None
    streak = health.consecutive_failures
    if outcome.result.ok:
        if streak == 0:
            return None, None
        healthy = Health(0, None, None, health.disabled_reason)
        if streak >= policy.circuit_failure_threshold:
            return healthy, base.HealthChange("endpoint.recovered", "a delivery succeeded")
        return healthy, None
    streak += 1
    failing_since = health.failing_since or now
    change = None
    open_until = None
    if streak >= policy.circuit_failure_threshold:
        open_until = now + policy.circuit_cooldown_seconds
        if streak == policy.circuit_failure_threshold:
            change = base.HealthChange("endpoint.circuit_opened", f"{streak} failures in a row")
    reason = health.disabled_reason
    if reason is None:
        if outcome.disable_endpoint:
            reason = outcome.disable_endpoint
        elif now - failing_since >= policy.disable_after_seconds:
            reason = f"failing continuously for {policy.disable_after_seconds / 3600:g} h"
        if reason is not None:
            change = base.HealthChange("endpoint.disabled", reason)
    return Health(streak, failing_since, open_until, reason), change
