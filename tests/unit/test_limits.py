"""Per-endpoint rate limits: a token bucket each, refilled at the rate, bursts up to the rate."""

from __future__ import annotations

import pytest

from gateway.outbox.limits import Bucket, take

NOW = 1000.0


class Buckets:
    """Threads each key's bucket through ``take``, as the store does with each endpoint's."""

    def __init__(self) -> None:
        self.held: dict[str, Bucket] = {}

    def wait_time(self, key: str, rate: float, now: float) -> float:
        self.held[key], wait = take(self.held.get(key), rate, now)
        return wait


def test_a_burst_up_to_the_rate_then_one_per_interval() -> None:
    limiter = Buckets()
    assert [limiter.wait_time("a", 4, NOW) for _ in range(4)] == [0.0] * 4
    assert limiter.wait_time("a", 4, NOW) == pytest.approx(0.25)
    assert limiter.wait_time("a", 4, NOW + 0.25) == 0.0, "refilled at four a second"
    assert limiter.wait_time("a", 4, NOW + 0.25) == pytest.approx(0.25)


def test_a_rate_under_one_a_second() -> None:
    limiter = Buckets()
    assert limiter.wait_time("a", 0.5, NOW) == 0.0
    assert limiter.wait_time("a", 0.5, NOW) == pytest.approx(2.0)
    assert limiter.wait_time("a", 0.5, NOW + 1) == pytest.approx(1.0), "half a token is back"
    assert limiter.wait_time("a", 0.5, NOW + 2) == 0.0


def test_each_endpoint_has_its_own_bucket() -> None:
    limiter = Buckets()
    assert limiter.wait_time("a", 1, NOW) == 0.0
    assert limiter.wait_time("a", 1, NOW) > 0
    assert limiter.wait_time("b", 1, NOW) == 0.0


def test_a_clock_behind_the_bucket_refills_nothing() -> None:
    """Hosts' clocks differ: a process whose clock is behind the last taker's neither refills
    the bucket for time that has not passed for it nor empties it."""
    bucket, _ = take(None, 2, NOW)
    behind, wait = take(bucket, 2, NOW - 10)
    assert wait == 0.0
    assert behind == Bucket(0.0, NOW)
    assert take(behind, 2, NOW)[1] == pytest.approx(0.5)
