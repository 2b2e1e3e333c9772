"""The retry policy: pure, so a table of cases tests it. Its answer is stored, never slept on.

Status rules follow the Standard Webhooks spec: only 2xx succeeds; 3xx is a failure and is
never followed; 410 Gone disables the endpoint; 429 and 503 may say when to come back
(``Retry-After``), which is honoured within bounds; a timeout or 429 waits at least a minute.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
from collections.abc import Mapping

from gateway import models

MAX_DELAY = 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class Decision:
    status: models.DeliveryStatus
    next_attempt_at: float | None = None
    disable_endpoint: str | None = None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """After try ``n`` fails, wait ``schedule[n-1]`` seconds (± ``jitter``); past the end, dead."""

    schedule: tuple[float, ...]
    jitter: float = 0.2
    throttle_min_delay: float = 60.0
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False)

    def decide(
        self,
        attempt: int,
        result: models.AttemptResult,
        now: float,
        schedule: tuple[float, ...] | None = None,
    ) -> Decision:
        if result.ok:
            return Decision(models.DeliveryStatus.SUCCEEDED)
        if result.status_code == 410:
            reason = "the receiver answered 410 Gone"
            return Decision(models.DeliveryStatus.FAILED, disable_endpoint=reason)
        steps = schedule or self.schedule
        if attempt > len(steps):
            return Decision(models.DeliveryStatus.FAILED)
        scheduled = steps[attempt - 1]
        delay = (
            scheduled * (1 + self.rng.uniform(-self.jitter, self.jitter))
            if self.jitter
            else scheduled
        )
        if result.status_code in (429, 503):
            asked = retry_after(result.response_headers, now)
            if asked is not None:
                delay = min(max(asked, scheduled), 2 * scheduled)
        if result.status_code == 429 or result.timed_out:
            delay = max(delay, self.throttle_min_delay)
        return Decision(models.DeliveryStatus.PENDING, now + min(delay, MAX_DELAY))


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), or None if absent or invalid."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return None
    return seconds
