"""Retention policy: which moments cut off what, from the settings and now."""

from __future__ import annotations

from gateway.store.retention import DAY, KEEP_FOREVER, Retention, thread_expiry

NOW = 1_800_000_000.0


def policy(**changes: float) -> Retention:
    values = {
        "seconds": 30 * DAY,
        "rejected_seconds": 7 * DAY,
        "event_seconds": 7 * DAY,
        "bin_keep": 500,
        "dedup_window": DAY,
        **changes,
    }
    return Retention(**values)  # type: ignore[arg-type]


def test_cutoffs_follow_the_settings() -> None:
    cutoffs = policy().cutoffs(NOW)
    assert (cutoffs.deliveries, cutoffs.runs, cutoffs.triggers) == (NOW - 30 * DAY,) * 3
    assert (cutoffs.rejected, cutoffs.events) == (NOW - 7 * DAY, NOW - 7 * DAY)


def test_events_never_outlive_their_runs_and_triggers_outlive_the_dedup_window() -> None:
    cutoffs = policy(seconds=60.0, event_seconds=30 * DAY, dedup_window=3600.0).cutoffs(NOW)
    assert cutoffs.events == cutoffs.runs == NOW - 60
    assert cutoffs.triggers == NOW - 3600, "an idempotency key within its window is kept"


def test_zero_keeps_forever() -> None:
    cutoffs = policy(seconds=0, rejected_seconds=0, event_seconds=0).cutoffs(NOW)
    assert {cutoffs.runs, cutoffs.rejected, cutoffs.events, cutoffs.triggers} == {KEEP_FOREVER}


def test_a_thread_expires_by_its_delete_ttl_only() -> None:
    ttl = {"strategy": "delete", "ttl_minutes": 1, "expires_at": "2027-01-15T08:00:00+00:00"}
    assert thread_expiry(ttl) == NOW
    assert thread_expiry({**ttl, "strategy": "keep_latest"}) is None
    assert thread_expiry({**ttl, "expires_at": "soon"}) is None
    assert thread_expiry(None) is None
