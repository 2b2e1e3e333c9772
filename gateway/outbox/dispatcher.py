"""The dispatcher: claim due deliveries (lease) → send → record the attempt → retry, done or dead.

The only place hookgate performs outbound HTTP. The heartbeat renews a delivery's lease while
its request is in flight, so a slow receiver is not sent it twice meanwhile. Backoff between
tries is the row's ``next_attempt_at``, so it survives restarts and moves between processes.
Claiming is fair per endpoint, and an endpoint's failure streak (circuit breaker, disabling) is
recorded with each attempt; what is held back by a limit or an open circuit uses up no attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Collection

import structlog

from gateway import clock as clocks
from gateway import models, signing
from gateway.metrics import Metrics
from gateway.outbox import routing
from gateway.outbox.delivery import Sender
from gateway.outbox.retry import RetryPolicy
from gateway.store import Store, base

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class DispatchLimits:
    concurrency: int
    lease_seconds: float
    poll_interval: float
    claim: base.ClaimPolicy
    health: base.HealthPolicy


class Dispatcher:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        policy: RetryPolicy,
        clock: clocks.Clock,
        *,
        signing_secret: str,
        ready: asyncio.Event,
        limits: DispatchLimits,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.sender = sender
        self.policy = policy
        self.clock = clock
        self.signing_secret = signing_secret
        self.ready = ready
        self.limits = limits
        self.metrics = metrics
        self._in_flight: set[asyncio.Task[None]] = set()
        self._held: set[str] = set()  # deliveries leased here and not yet recorded
        self._stopping = False

    async def run_forever(self) -> None:
        while not self._stopping:
            self.ready.clear()
            claimed = await self.claim()
            if len(self._in_flight) >= self.limits.concurrency:
                timeout = self.limits.poll_interval  # a send that ends sets ready
            elif claimed:
                continue
            else:
                timeout = await self._idle_wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # no task, unlike wait_for
                    await self.ready.wait()

    async def _idle_wait(self) -> float:
        due = await self.store.next_due_at()
        if due is None:
            return self.limits.poll_interval
        return min(self.limits.poll_interval, max(due - self.clock.now(), 0.001))

    async def claim(self, run_id: str | None = None) -> int:
        """Lease what is due (of one run, if given), up to the free concurrency, and start
        sending it."""
        room = self.limits.concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        deliveries = await self.store.claim_deliveries(
            room, self.clock.now(), self.limits.lease_seconds, self.limits.claim, run_id
        )
        for delivery in deliveries:
            self._held.add(delivery.delivery_id)
            task = asyncio.create_task(
                self._deliver_held(delivery), name=f"delivery-{delivery.delivery_id}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(deliveries)

    async def _deliver_held(self, delivery: models.Delivery) -> None:
        try:
            await self.deliver(delivery)
        finally:
            self._held.discard(delivery.delivery_id)

    def held(self) -> Collection[str]:
        """Deliveries leased here whose try is not recorded yet (the heartbeat renews them)."""
        return list(self._held)

    def lost(self, ids: Collection[str]) -> None:
        """Leases the heartbeat could not renew while their request is in flight: another
        process took the delivery over after the lease lapsed, and may send it too."""
        for delivery_id in self._held.intersection(ids):
            log.warning("delivery_lease_lost", delivery_id=delivery_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.ready.set()

    async def run_once(self) -> int:
        """Claim what is due now, send it all, and return how many were claimed."""
        count = await self.claim()
        await self.wait_idle()
        return count

    async def wait_idle(self) -> None:
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def stop(self) -> None:
        """Stop claiming; let the tries in flight finish and be recorded."""
        self._stopping = True
        self.ready.set()
        await self.wait_idle()

    async def deliver(self, delivery: models.Delivery) -> None:
        bound = log.bind(
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            endpoint_id=delivery.endpoint_id,
        )
        now = self.clock.now()
        endpoint = None
        if delivery.endpoint_id is not None:
            endpoint = await self.store.get_endpoint(delivery.endpoint_id)
            if endpoint is None:
                result = models.AttemptResult(
                    started_at=now, duration_ms=0.0, error="endpoint deleted"
                )
                await self._record(
                    delivery, base.AttemptOutcome(result, models.DeliveryStatus.CANCELLED)
                )
                bound.info("delivery_cancelled", reason="endpoint deleted")
                return
            if endpoint.rate_limit:
                wait = await self.store.take_rate_token(
                    endpoint.endpoint_id, endpoint.rate_limit, now
                )
                if wait > 0:
                    await self.store.defer_delivery(delivery.delivery_id, now + wait)
                    self._held.discard(delivery.delivery_id)
                    return
        try:
            outgoing = await routing.outgoing(delivery, endpoint)
        except routing.TransformFailed as exc:
            await self.transform_failed(delivery, str(exc))
            return
        secrets = (
            endpoint.signing_secrets(now)
            if endpoint
            else (signing.callback_secret(self.signing_secret, delivery.url),)
        )
        result = await self.sender.send(outgoing, secrets, endpoint.timeout if endpoint else None)
        attempt = delivery.attempts  # the claim recorded this try as started, and counted it
        decision = self.policy.decide(
            attempt, result, self.clock.now(), endpoint.retry_schedule if endpoint else None
        )
        outcome = base.AttemptOutcome(
            result,
            decision.status,
            decision.next_attempt_at,
            decision.disable_endpoint,
            self.limits.health if endpoint else None,
        )
        change = await self._record(delivery, outcome)
        self.metrics.attempt(result)
        bound.info(
            "delivery_attempted",
            attempt=attempt,
            status_code=result.status_code,
            error=result.error,
            duration_ms=round(result.duration_ms, 2),
        )
        if decision.status is models.DeliveryStatus.SUCCEEDED:
            bound.info("delivery_succeeded", attempt=attempt)
            if delivery.origin_at is not None:
                self.metrics.latency.observe(max(0.0, self.clock.now() - delivery.origin_at))
        elif decision.status is models.DeliveryStatus.FAILED:
            bound.warning("delivery_failed", attempt=attempt, reason=decision.disable_endpoint)
        else:
            bound.info(
                "delivery_retry_scheduled",
                attempt=attempt,
                next_attempt_at=decision.next_attempt_at,
            )
        if change is not None and endpoint is not None:
            await self.announce(endpoint, change)

    async def transform_failed(self, delivery: models.Delivery, error: str) -> None:
        """A transform that fails will fail again: the delivery is dead at once, with the error
        as its try's outcome, and the receiver's health is untouched. Once the transform is
        corrected, a retry or replay sends it."""
        result = models.AttemptResult(started_at=self.clock.now(), duration_ms=0.0, error=error)
        await self._record(delivery, base.AttemptOutcome(result, models.DeliveryStatus.FAILED))
        log.warning(
            "delivery_transform_failed",
            delivery_id=delivery.delivery_id,
            endpoint_id=delivery.endpoint_id,
            error=error,
        )

    async def _record(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        # Shielded: a shutdown must not lose the record of a request already sent.
        change = await asyncio.shield(self.store.record_attempt(delivery, outcome))
        self._held.discard(delivery.delivery_id)  # the record released the lease
        return change

    async def announce(self, endpoint: models.Endpoint, change: base.HealthChange) -> None:
        """Log an endpoint's change of state and deliver it to endpoints subscribed to ``endpoint.*``."""
        log.warning(
            change.event_type.replace(".", "_"),
            endpoint_id=endpoint.endpoint_id,
            reason=change.reason,
        )
        now = self.clock.now()
        body = json.dumps(
            {
                "type": change.event_type,
                "timestamp": clocks.isoformat(now),
                "data": {
                    "endpoint_id": endpoint.endpoint_id,
                    "url": endpoint.url,
                    "reason": change.reason,
                },
            },
            separators=(",", ":"),
        ).encode()
        subscribers = [
            models.NewDelivery(
                models.new_id(), other.url, change.event_type, body, other.endpoint_id
            )
            for other in await self.store.list_endpoints()
            if change.event_type in other.event_types
        ]
        if subscribers:
            await self.store.enqueue_deliveries(None, subscribers, now)
            self.ready.set()
