"""Heartbeat leases: this process renews the leases it holds while their work is alive.

A lease is short (``lease_seconds``) and never sized to the work. Every ``heartbeat_seconds``
one UPDATE per table extends the leases this process still holds, named by its owner and the
ids its worker and dispatcher are working on. When the process dies the beats stop, its leases
lapse, and other processes take the work over within a lease and a poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Protocol

import structlog

from gateway import errors
from gateway.clock import Clock
from gateway.store import Store

log = structlog.get_logger(__name__)


class Holder(Protocol):
    """A worker or dispatcher: what it holds leases on, and what to do when one was lost."""

    def held(self) -> Collection[str]:
        """The ids whose leases this process holds and still needs."""

    def lost(self, ids: Collection[str]) -> None:
        """These leases were not renewed: the work ended, or another process took it over."""


class Heartbeat:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease_seconds: float,
        interval: float,
        runs: Holder,
        deliveries: Holder,
    ) -> None:
        self.store = store
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.runs = runs
        self.deliveries = deliveries

    async def run_forever(self) -> None:
        """Beat every ``interval`` of real time (a fake clock only dates the leases)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except errors.StoreError as exc:  # the next beat may get through before they lapse
                log.warning("heartbeat_failed", detail=exc.detail)

    async def beat(self) -> None:
        """Renew every lease held now; tell the holders about those that were not renewed."""
        run_ids, delivery_ids = list(self.runs.held()), list(self.deliveries.held())
        if not run_ids and not delivery_ids:
            return
        until = self.clock.now() + self.lease_seconds
        kept_runs, kept_deliveries = await asyncio.gather(
            self.store.renew_run_leases(run_ids, until),
            self.store.renew_delivery_leases(delivery_ids, until),
        )
        for holder, asked, kept in (
            (self.runs, run_ids, kept_runs),
            (self.deliveries, delivery_ids, kept_deliveries),
        ):
            missing = set(asked).difference(kept)
            if missing:
                holder.lost(missing)
