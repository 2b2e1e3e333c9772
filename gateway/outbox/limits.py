"""Per-endpoint request rates: a token bucket each, so a fast endpoint is never held by a slow one."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    """Allows ``rate`` requests per second per key, with bursts of up to ``max(1, rate)``."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def wait_time(self, key: str, rate: float, now: float) -> float:
        """0 if a request may go now (and takes a token), else the seconds until one may."""
        capacity = max(1.0, rate)
        bucket = self._buckets.setdefault(key, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated_at) * rate)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate
