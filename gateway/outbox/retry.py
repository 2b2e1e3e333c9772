"""The retry policy: pure, so a table of cases tests it. Its answer is stored, never slept on."""

from __future__ import annotations

import dataclasses
import random

from gateway import models


@dataclasses.dataclass(frozen=True)
class Decision:
    status: models.DeliveryStatus
    next_attempt_at: float | None = None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """After try ``n`` fails, wait ``schedule[n-1]`` seconds (± ``jitter``); past the end, dead."""

    schedule: tuple[float, ...]
    jitter: float = 0.2
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def decide(self, attempt: int, result: models.AttemptResult, now: float) -> Decision:
        if result.ok:
            return Decision(models.DeliveryStatus.SUCCEEDED)
        if attempt >= self.max_attempts:
            return Decision(models.DeliveryStatus.FAILED)
        delay = self.schedule[attempt - 1]
        if self.jitter:
            delay *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return Decision(models.DeliveryStatus.PENDING, now + delay)
