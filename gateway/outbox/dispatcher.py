"""The dispatcher: claim due deliveries (lease) → send → record the attempt → retry, done or dead.

The only place hookgate performs outbound HTTP. Backoff between tries is the row's
``next_attempt_at``, so it survives restarts and moves between processes.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway import models
from gateway.clock import Clock
from gateway.outbox.delivery import Sender
from gateway.outbox.retry import RetryPolicy
from gateway.store import Store

log = structlog.get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        policy: RetryPolicy,
        clock: Clock,
        *,
        signing_secret: str,
        ready: asyncio.Event,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
    ) -> None:
        self.store = store
        self.sender = sender
        self.policy = policy
        self.clock = clock
        self.signing_secret = signing_secret
        self.ready = ready
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def run_forever(self) -> None:
        while not self._stopping:
            self.ready.clear()
            claimed = await self.claim()
            if claimed and len(self._in_flight) < self.concurrency:
                continue
            timeout = await self._idle_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)

    async def _idle_wait(self) -> float:
        due = await self.store.next_due_at()
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(due - self.clock.now(), 0.001))

    async def claim(self) -> int:
        """Lease what is due, up to the free concurrency, and start sending it."""
        room = self.concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        deliveries = await self.store.claim_deliveries(room, self.clock.now(), self.lease_seconds)
        for delivery in deliveries:
            task = asyncio.create_task(
                self.deliver(delivery), name=f"delivery-{delivery.delivery_id}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(deliveries)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.ready.set()

    async def run_once(self) -> int:
        """Claim what is due now, send it all, and return how many were sent."""
        count = await self.claim()
        await self.wait_idle()
        return count

    async def drain(self) -> int:
        """Send until nothing is due now (tests and the CLI)."""
        total = 0
        while sent := await self.run_once():
            total += sent
        return total

    async def wait_idle(self) -> None:
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def stop(self) -> None:
        """Stop claiming; let the tries in flight finish and be recorded."""
        self._stopping = True
        self.ready.set()
        await self.wait_idle()

    async def retry(self, delivery_id: str) -> models.Delivery | None:
        """Make a delivery due now (manual retry or replay) and wake the loop."""
        delivery = await self.store.retry_delivery(delivery_id, self.clock.now())
        if delivery is not None:
            log.info("delivery_retry_requested", delivery_id=delivery_id, run_id=delivery.run_id)
            self.ready.set()
        return delivery

    async def deliver(self, delivery: models.Delivery) -> None:
        bound = log.bind(delivery_id=delivery.delivery_id, run_id=delivery.run_id)
        secret = await self._secret_for(delivery)
        if secret is None:
            await self._record(
                delivery,
                _no_send(self.clock.now(), "endpoint deleted"),
                models.DeliveryStatus.CANCELLED,
                None,
            )
            bound.info("delivery_cancelled", reason="endpoint deleted")
            return
        result = await self.sender.send(delivery, secret)
        attempt = delivery.attempts + 1
        decision = self.policy.decide(attempt, result, self.clock.now())
        await self._record(delivery, result, decision.status, decision.next_attempt_at)
        bound.info(
            "delivery_attempted",
            attempt=attempt,
            status_code=result.status_code,
            error=result.error,
            duration_ms=round(result.duration_ms, 2),
        )
        if decision.status is models.DeliveryStatus.SUCCEEDED:
            bound.info("delivery_succeeded", attempt=attempt)
        elif decision.status is models.DeliveryStatus.FAILED:
            bound.warning("delivery_failed", attempt=attempt)
        else:
            bound.info(
                "delivery_retry_scheduled",
                attempt=attempt,
                next_attempt_at=decision.next_attempt_at,
            )

    async def _record(
        self,
        delivery: models.Delivery,
        result: models.AttemptResult,
        status: models.DeliveryStatus,
        next_attempt_at: float | None,
    ) -> None:
        # Shielded: a shutdown must not lose the record of a request already sent.
        await asyncio.shield(
            self.store.record_attempt(delivery.delivery_id, result, status, next_attempt_at)
        )

    async def _secret_for(self, delivery: models.Delivery) -> str | None:
        if delivery.endpoint_id is None:
            return self.signing_secret
        endpoint = await self.store.get_endpoint(delivery.endpoint_id)
        return None if endpoint is None else endpoint.secret


def _no_send(now: float, reason: str) -> models.AttemptResult:
    return models.AttemptResult(started_at=now, duration_ms=0.0, error=reason)
