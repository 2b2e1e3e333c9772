"""The live feed behind ``/inspect``: an in-process notifier, fed by the store's committed writes.

``observe(store, notifier)`` wraps the app's store: every verb is forwarded unchanged, and the
writes the pages care about (triggers, runs, run endings, attempts, retries, endpoint changes)
announce themselves *after* they committed, so a page never shows something that is not yet
durable. Bin captures are announced by the bin handler. Announcements are small dicts
(``{"kind": "run", "run_id": …}``); a page re-reads what it shows through the store.

Memory holds only live fan-out: a slow or gone subscriber loses announcements, never data, and
a page that reconnects re-reads everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from gateway import models
from gateway.fanout import FanOut
from gateway.store import Store, base

Change = dict[str, Any]


class Notifier:
    """Fan-out of changes to the ``/inspect`` live streams of this process; a slow reader is
    told to re-read everything (``{"kind": "resync"}``), the end of a stream is ``None``."""

    def __init__(self, queue_size: int = 256) -> None:
        self._fanout: FanOut[Change | None] = FanOut({"kind": "resync"}, queue_size)

    @property
    def subscribers(self) -> int:
        return self._fanout.subscribers

    def publish(self, kind: str, **fields: Any) -> None:
        self._fanout.publish({"kind": kind, **fields})

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Change | None]]:
        return self._fanout.subscribe()

    def close(self) -> None:
        """End every stream (shutdown): each subscriber receives ``None``."""
        self._fanout.close(None)


class _ObservedStore:
    """Forwards every attribute to the real store; the writes below also announce themselves."""

    def __init__(self, inner: Store, notifier: Notifier) -> None:
        self._inner = inner
        self._notify = notifier.publish

    @property
    def observed(self) -> Store:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: base.NewRun, now: float
    ) -> tuple[models.Run, bool]:
        stored, created = await self._inner.create_trigger_and_run(trigger, run, now)
        if created:
            self._notify(
                "trigger",
                trigger_id=trigger.trigger_id,
                run_id=stored.run_id,
                flow_id=trigger.flow_id,
            )
        return stored, created

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        await self._inner.store_rejected_trigger(trigger)
        self._notify("trigger", trigger_id=trigger.trigger_id, flow_id=trigger.flow_id)

    async def create_run(self, run: base.NewRun, now: float) -> models.Run:
        stored = await self._inner.create_run(run, now)
        self._notify("run", run_id=stored.run_id, flow_id=stored.flow_id, status="pending")
        return stored

    async def claim_runs(self, limit: int, now: float, lease_seconds: float) -> list[models.Run]:
        runs = await self._inner.claim_runs(limit, now, lease_seconds)
        for run in runs:
            self._notify("run", run_id=run.run_id, flow_id=run.flow_id, status="running")
        return runs

    async def finish_run(self, ending: base.RunEnding, now: float) -> models.Run | None:
        run = await self._inner.finish_run(ending, now)
        if run is not None:
            self._notify("run_end", run_id=run.run_id, flow_id=run.flow_id, status=run.status.value)
        return run

    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None:
        await self._inner.enqueue_deliveries(run_id, deliveries, now)
        for delivery in deliveries:
            self._notify("delivery", delivery_id=delivery.delivery_id, run_id=run_id)

    async def record_attempt(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        change = await self._inner.record_attempt(delivery, outcome)
        self._notify(
            "attempt",
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            endpoint_id=delivery.endpoint_id,
            status=outcome.status.value,
            status_code=outcome.result.status_code,
        )
        return change

    async def ack_pulled(
        self, delivery_id: str, attempt: int, outcome: base.AttemptOutcome
    ) -> tuple[models.Delivery, base.HealthChange | None] | None:
        found = await cast(base.RelayStore, self._inner).ack_pulled(delivery_id, attempt, outcome)
        if found is not None:
            delivery = found[0]
            self._notify(
                "attempt",
                delivery_id=delivery_id,
                run_id=delivery.run_id,
                endpoint_id=delivery.endpoint_id,
                status=delivery.status.value,
                status_code=outcome.result.status_code,
            )
        return found

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        delivery = await self._inner.retry_delivery(delivery_id, now)
        if delivery is not None:
            self._notify("delivery", delivery_id=delivery_id, run_id=delivery.run_id)
        return delivery

    async def replay_deliveries(self, selection: base.DeliverySelection, now: float) -> int:
        count = await self._inner.replay_deliveries(selection, now)
        self._notify("delivery", run_id=selection.run_id, endpoint_id=selection.endpoint_id)
        return count

    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        stored = await self._inner.create_endpoint(endpoint)
        self._notify("endpoint", endpoint_id=endpoint.endpoint_id)
        return stored

    async def update_endpoint(
        self, endpoint_id: str, changes: base.EndpointChanges, now: float
    ) -> models.Endpoint | None:
        return self._endpoint(await self._inner.update_endpoint(endpoint_id, changes, now))

    async def resume_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint | None:
        return self._endpoint(await self._inner.resume_endpoint(endpoint_id, now))

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        return self._endpoint(
            await self._inner.rotate_secret(endpoint_id, secret, overlap_until, now)
        )

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        deleted = await self._inner.delete_endpoint(endpoint_id)
        self._notify("endpoint", endpoint_id=endpoint_id)
        return deleted

    def _endpoint(self, endpoint: models.Endpoint | None) -> models.Endpoint | None:
        if endpoint is not None:
            self._notify("endpoint", endpoint_id=endpoint.endpoint_id)
        return endpoint


def observe(store: Store, notifier: Notifier) -> Store:
    """``store``, announcing its committed writes to ``notifier``.

    The wrapper forwards unknown attributes (other verb families, ``writer``, ``path``) to the
    real store, so it stands in for it wherever a ``Store`` is expected.
    """
    return cast(Store, _ObservedStore(store, notifier))


def unwrap(store: Store) -> Store:
    inner = getattr(store, "observed", None)
    return cast(Store, inner) if inner is not None else store
