"""Per-endpoint request rates: a token bucket each, so a fast endpoint is never held by a slow one."""

from __future__ import annotations

import dataclasses

import structlog

log = structlog.get_logger(__name__)

MAX_BUCKETS = 10_000
"""Endpoints whose bucket is kept; beyond, full buckets go (a new one starts full anyway)."""


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated_at: float
    rate: float = 1.0

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated_at) * self.rate >= max(1.0, self.rate)


class RateLimiter:
    """Allows ``rate`` requests per second per key, with bursts of up to ``max(1, rate)``."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_time(self, key: str, rate: float, now: float) -> float:
        """0 if a request may go now (and takes a token), else the seconds until one may."""
        capacity = max(1.0, rate)
        if key not in self._buckets and len(self._buckets) >= self.max_buckets:
            self._forget(now)
        bucket = self._buckets.setdefault(key, _Bucket(capacity, now))
        bucket.rate = rate
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated_at) * rate)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate

    def _forget(self, now: float) -> None:
        """Make room: drop the buckets idle long enough to be full again, else the oldest."""
        idle = [key for key, bucket in self._buckets.items() if bucket.full(now)]
        if not idle:
            log.warning("rate_buckets_full", max_buckets=self.max_buckets)
            idle = [next(iter(self._buckets))]
        for key in idle:
            del self._buckets[key]
