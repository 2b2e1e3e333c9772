"""The pruner: deletes what retention says has expired, in batches, every ``prune_interval``.

It keeps time by the app's clock (a fake clock moved past the interval makes it prune), and
checks that clock every ``check_every`` seconds of real time. Each batch is a short write, and
the pruner yields between batches, so ingest and delivery never wait behind a whole prune.
"""

from __future__ import annotations

import asyncio
from typing import cast

import structlog

from gateway import errors
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store, base
from gateway.store.retention import Pruned, Retention

log = structlog.get_logger(__name__)


class Pruner:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        retention: Retention,
        *,
        interval: float,
        batch: int,
        check_every: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = cast(base.PruneStore, store)
        self.clock = clock
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self.check_every = min(check_every, interval) if interval > 0 else check_every
        self.metrics = metrics
        self.pruned_at: float | None = None
        self.last = Pruned()

    @classmethod
    def for_settings(
        cls, settings: Settings, store: Store, clock: Clock, metrics: Metrics | None = None
    ) -> Pruner:
        return cls(
            store,
            clock,
            Retention.from_settings(settings),
            interval=settings.prune_interval,
            batch=settings.prune_batch,
            check_every=settings.poll_interval,
            metrics=metrics,
        )

    async def prune(self) -> Pruned:
        """Delete everything expired now, batch after batch; what went."""
        cutoffs = self.retention.cutoffs(self.clock.now())
        total = Pruned()
        while True:
            pruned = await self.store.prune(cutoffs, self.batch)
            total += pruned
            if self.metrics is not None:
                self.metrics.pruned(pruned)
            if not pruned.filled(self.batch):
                break
            await asyncio.sleep(0)  # other writers get the store between batches
        self.pruned_at, self.last = self.clock.now(), total
        if self.metrics is not None:
            self.metrics.last_prune.set(self.pruned_at)
        if total.total:
            log.info("pruned", **{kind: n for kind, n in total.counts().items() if n})
        return total

    async def preview(self) -> Pruned:
        """What ``prune`` would delete now; deletes nothing."""
        return await self.store.count_prunable(self.retention.cutoffs(self.clock.now()))

    async def run_forever(self) -> None:
        """Prune at once, then every ``interval`` by the app's clock; never when it is 0."""
        if self.interval <= 0:
            return
        due = self.clock.now()
        while True:
            started = self.clock.now()
            if started >= due:
                try:
                    await self.prune()
                except errors.StoreError as exc:  # the next round may get through
                    log.warning("prune_failed", detail=exc.detail)
                # Counted from the start: what expired while this prune ran (its cutoffs were
                # taken at the start) waits one interval, not one interval and the prune.
                due = started + self.interval
            await asyncio.sleep(self.check_every)
