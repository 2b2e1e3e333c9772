"""Pull endpoints: deliveries kept for consumers that cannot be reached (``hookgate listen``).

A consumer long-polls for an endpoint's due deliveries; each one it gets is leased to it (the
gateway never connects to the consumer) and comes with the body and headers exactly as a push
would send them, signed with the endpoint's secret. The consumer acknowledges each try with
its receiver's answer, which goes through the same retry policy and endpoint health as a
pushed delivery's. A delivery not acknowledged before its lease lapses is claimed again, with
the same ``webhook-id``. Consumers on one endpoint share its deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Protocol

import structlog

from gateway import clock as clocks
from gateway import errors, models, signing
from gateway.metrics import Metrics
from gateway.outbox import routing
from gateway.outbox.delivery import USER_AGENT
from gateway.outbox.retry import RetryPolicy
from gateway.store import Store, base

log = structlog.get_logger(__name__)

MAX_WAIT = 60.0
MAX_LIMIT = 100
MIN_LEASE, MAX_LEASE = 1.0, 900.0


class Wakeup:
    """Wakes every waiter at once (one ``asyncio.Event`` is cleared by its first reader).

    ``arm`` before looking for work and ``wait`` on what it returned after finding none, so a
    wake-up in between is not missed."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def arm(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task, unlike wait_for
                await event.wait()


class PullStore(Store, base.RelayStore, Protocol):
    """The verbs a pull endpoint's consumers use."""


class Announcer(Protocol):
    """Where an endpoint's change of state goes (the dispatcher's ``announce``)."""

    async def announce(self, endpoint: models.Endpoint, change: base.HealthChange) -> None: ...


@dataclasses.dataclass(frozen=True)
class Pulled:
    """One delivery handed to a consumer: what to POST to its receiver, and until when it
    holds the delivery."""

    delivery: models.Delivery
    body: bytes
    headers: dict[str, str]
    lease_until: float


@dataclasses.dataclass(frozen=True)
class Limits:
    claim: base.ClaimPolicy
    health: base.HealthPolicy
    poll_interval: float


class PullService:
    def __init__(
        self,
        store: PullStore,
        clock: clocks.Clock,
        policy: RetryPolicy,
        *,
        limits: Limits,
        wakeup: Wakeup,
        announcer: Announcer,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.limits = limits
        self.wakeup = wakeup
        self.announcer = announcer
        self.metrics = metrics
        self.stopping = False

    def stop(self) -> None:
        """Shutting down: waiting consumers get what there is (nothing) at once."""
        self.stopping = True
        self.wakeup.set()

    async def endpoint(self, endpoint_id: str) -> models.Endpoint:
        found = await self.store.get_endpoint(endpoint_id)
        if found is None:
            raise errors.NotFound(f"Endpoint {endpoint_id} not found")
        if not found.pulled:
            raise errors.Conflict(
                f"Endpoint {endpoint_id} is a push endpoint: the gateway POSTs its deliveries "
                'to its URL. Register one with "mode": "pull" for consumers.'
            )
        return found

    async def pull(
        self,
        endpoint_id: str,
        *,
        limit: int,
        wait: float,
        lease_seconds: float,
        gone: Callable[[], bool] = lambda: False,
    ) -> tuple[str, list[Pulled]]:
        """The endpoint's state (``Endpoint.state``: a paused, disabled or open-circuit one
        hands out nothing) and up to ``limit`` due deliveries, oldest first, leased for
        ``lease_seconds``; waits up to ``wait`` seconds for the first one. A consumer that is
        ``gone`` (hung up while waiting) is given none: they would stay leased to nobody until
        the lease lapsed."""
        endpoint = await self.endpoint(endpoint_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if gone():
                return endpoint.state(self.clock.now()), []
            armed = self.wakeup.arm()
            now = self.clock.now()
            claimed = await self.store.claim_pulled(
                endpoint_id, limit, now, lease_seconds, self.limits.claim
            )
            remaining = deadline - loop.time()
            if claimed or remaining <= 0 or self.stopping:
                break
            await self.wakeup.wait(armed, min(remaining, self.limits.poll_interval))
        pulled = []
        for delivery in claimed:
            ready = await self._prepared(endpoint, delivery, now + lease_seconds)
            if ready is not None:
                pulled.append(ready)
        if not pulled:  # it may have been paused, resumed or disabled meanwhile
            endpoint = await self.endpoint(endpoint_id)
        return endpoint.state(self.clock.now()), pulled

    async def _prepared(
        self, endpoint: models.Endpoint, delivery: models.Delivery, lease_until: float
    ) -> Pulled | None:
        """The delivery as a push would send it: transformed, signed now. A transform that
        fails kills the delivery with that error, as the dispatcher does."""
        try:
            outgoing = await routing.outgoing(delivery, endpoint)
        except routing.TransformFailed as exc:
            result = models.AttemptResult(self.clock.now(), 0.0, error=str(exc))
            outcome = base.AttemptOutcome(result, models.DeliveryStatus.FAILED)
            await self.store.ack_pulled(delivery.delivery_id, delivery.attempts, outcome)
            log.warning(
                "delivery_transform_failed", delivery_id=delivery.delivery_id, error=str(exc)
            )
            return None
        body = outgoing.payload
        secrets = endpoint.signing_secrets(self.clock.now())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **outgoing.headers,
            **signing.webhook_headers(secrets, delivery.delivery_id, int(self.clock.now()), body),
        }
        return Pulled(outgoing, body, headers, lease_until)

    async def ack(
        self, delivery_id: str, attempt: int, result: models.AttemptResult
    ) -> models.Delivery:
        """Record the consumer's outcome of try ``attempt``: only 2xx delivers; anything else is
        retried on the endpoint's schedule, and counts towards its health."""
        delivery = await self.store.get_delivery(delivery_id)
        if delivery is None or delivery.endpoint_id is None:
            raise errors.NotFound(f"Delivery {delivery_id} not found, or not a pull endpoint's")
        endpoint = await self.endpoint(delivery.endpoint_id)
        decision = self.policy.decide(attempt, result, self.clock.now(), endpoint.retry_schedule)
        outcome = base.AttemptOutcome(
            result,
            decision.status,
            decision.next_attempt_at,
            decision.disable_endpoint,
            self.limits.health,
        )
        found = await self.store.ack_pulled(delivery_id, attempt, outcome)
        if found is None:
            raise errors.NotFound(f"Delivery {delivery_id} not found")
        stored, change = found
        self.metrics.attempt(result)
        log.info(
            "delivery_acknowledged",
            delivery_id=delivery_id,
            endpoint_id=endpoint.endpoint_id,
            attempt=attempt,
            status_code=result.status_code,
            error=result.error,
            status=stored.status.value,
        )
        if change is not None:
            await self.announcer.announce(endpoint, change)
        return stored
