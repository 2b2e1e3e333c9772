"""Retention: what has expired at a given moment, as cutoffs the store's ``prune`` applies.

Pure policy, no I/O. What is never pruned, whatever the settings:

- a delivery still pending (due, retrying or in flight), its attempts, its run, and the trigger
  of that run: what is needed to deliver or replay it;
- a run not finished, its events and its trigger;
- the runs (and their events) of a LangGraph thread that exists: a thread's state is derived
  from them, and the thread goes as a whole (its ``ttl``, or a delete);
- a trigger within the idempotency window, which de-duplicates the triggers still arriving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.settings import Settings

DAY = 24 * 3600.0
KEEP_FOREVER = float("-inf")
"""A cutoff before every row: nothing of that kind expires."""


@dataclasses.dataclass(frozen=True)
class Cutoffs:
    """Rows older than these moments (epoch seconds) have expired; ``now`` ends thread TTLs."""

    now: float
    deliveries: float
    """Settled deliveries (succeeded, failed, cancelled) last changed before this, with their
    attempts."""
    runs: float
    """Finished runs that ended before this and no longer have a delivery, with their events."""
    triggers: float
    """Triggers received before this whose run is gone (or goes in the same prune)."""
    rejected: float
    """Triggers refused at verification (they start no run) received before this."""
    events: float
    """The events of finished runs that ended before this; never earlier than ``runs``."""
    bin_keep: int
    """The newest captures each bin keeps."""


@dataclasses.dataclass(frozen=True)
class Retention:
    """The settings, in seconds; 0 keeps that kind forever."""

    seconds: float
    rejected_seconds: float
    event_seconds: float
    bin_keep: int
    dedup_window: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            seconds=settings.retention_days * DAY,
            rejected_seconds=settings.rejected_retention_days * DAY,
            event_seconds=settings.event_retention_days * DAY,
            bin_keep=settings.bin_keep_captures,
            dedup_window=settings.dedup_window_seconds,
        )

    def cutoffs(self, now: float) -> Cutoffs:
        runs = _before(now, self.seconds)
        return Cutoffs(
            now=now,
            deliveries=runs,
            runs=runs,
            triggers=min(runs, now - self.dedup_window),
            rejected=_before(now, self.rejected_seconds),
            events=max(_before(now, self.event_seconds), runs),
            bin_keep=self.bin_keep,
        )


def _before(now: float, seconds: float) -> float:
    return now - seconds if seconds > 0 else KEEP_FOREVER


@dataclasses.dataclass(frozen=True)
class Pruned:
    """Rows pruned (or, in a dry run, that would be), by kind."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    runs: int = 0
    triggers: int = 0
    rejected_triggers: int = 0
    captures: int = 0
    threads: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(**{name: getattr(self, name) + getattr(other, name) for name in KINDS})

    def counts(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    def filled(self, batch: int) -> bool:
        """Some kind reached the batch size, so more of it may have expired."""
        return any(count >= batch for name, count in self.counts().items() if name in BATCHED)


KINDS = tuple(field.name for field in dataclasses.fields(Pruned))
BATCHED = ("deliveries", "events", "runs", "triggers", "rejected_triggers", "captures", "threads")
"""The kinds a prune pass deletes at most a batch of (attempts go with their deliveries)."""


def thread_expiry(ttl: Mapping[str, Any] | None) -> float | None:
    """When a thread with this ``ttl`` (as the LangGraph API stores it) is to be deleted; None
    if never (no ttl, or a strategy other than ``delete``)."""
    if not ttl or ttl.get("strategy", "delete") != "delete":
        return None
    expires_at = ttl.get("expires_at")
    if not isinstance(expires_at, str):
        return None
    try:
        return datetime.fromisoformat(expires_at).timestamp()
    except ValueError:
        return None
