"""Per-endpoint request rates: a token bucket each, so a fast endpoint is never held by a slow one.

The bucket is stored with its endpoint (``Store.take_rate_token``), so every process sending to
it draws from the same one; this module is only the arithmetic.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: float


def take(bucket: Bucket | None, rate: float, now: float) -> tuple[Bucket, float]:
    """The bucket after a request asks to go at ``now`` (``None``: a full bucket), and 0 if it
    may go (it took a token), else the seconds until it may. ``rate`` requests per second, in
    bursts of up to ``max(1, rate)``; a clock behind the bucket's (another host's) refills
    nothing rather than draining it."""
    capacity = max(1.0, rate)
    if bucket is None:
        tokens, updated_at = capacity, now
    else:
        updated_at = max(now, bucket.updated_at)
        tokens = min(capacity, bucket.tokens + (updated_at - bucket.updated_at) * rate)
    if tokens >= 1:
        return Bucket(tokens - 1, updated_at), 0.0
    return Bucket(tokens, updated_at), (1 - tokens) / rate
