"""Per-endpoint rate limits: a token bucket each, refilled at the rate, bursts up to the rate."""

from __future__ import annotations

import pytest

from gateway.outbox.limits import RateLimiter

NOW = 1000.0


def test_a_burst_up_to_the_rate_then_one_per_interval() -> None:
    limiter = RateLimiter()
    assert [limiter.wait_time("a", 4, NOW) for _ in range(4)] == [0.0] * 4
    assert limiter.wait_time("a", 4, NOW) == pytest.approx(0.25)
    assert limiter.wait_time("a", 4, NOW + 0.25) == 0.0, "refilled at four a second"
    assert limiter.wait_time("a", 4, NOW + 0.25) == pytest.approx(0.25)


def test_a_rate_under_one_a_second() -> None:
    limiter = RateLimiter()
    assert limiter.wait_time("a", 0.5, NOW) == 0.0
    assert limiter.wait_time("a", 0.5, NOW) == pytest.approx(2.0)
    assert limiter.wait_time("a", 0.5, NOW + 1) == pytest.approx(1.0), "half a token is back"
    assert limiter.wait_time("a", 0.5, NOW + 2) == 0.0


def test_each_endpoint_has_its_own_bucket() -> None:
    limiter = RateLimiter()
    assert limiter.wait_time("a", 1, NOW) == 0.0
    assert limiter.wait_time("a", 1, NOW) > 0
    assert limiter.wait_time("b", 1, NOW) == 0.0


def test_buckets_are_bounded_and_a_refilled_one_is_forgotten_first() -> None:
    limiter = RateLimiter(max_buckets=3)
    for key, rate in (("a", 1), ("b", 1), ("c", 0.25)):
        limiter.wait_time(key, rate, NOW)
    assert limiter.wait_time("d", 1, NOW + 2) == 0.0  # "a" and "b" are full again, "c" is not
    assert len(limiter) == 2, "the full buckets went, as a new one starts full anyway"
    assert limiter.wait_time("c", 0.25, NOW + 2) > 0, "a refilling bucket is kept"
    for key in ("e", "f"):
        limiter.wait_time(key, 0.001, NOW + 2)
    assert len(limiter) == 3, "none is full: the oldest goes"
