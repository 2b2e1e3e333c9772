"""The dispatcher's decisions, one claimed delivery at a time, on a fake clock.

A real SQLite store on a temporary file; the sender is the dispatcher's seam, a scripted
object that records what it was asked to send and answers with ``AttemptResult``s, so that no
test waits on the network or on wall time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from gateway import models, signing
from gateway.metrics import Metrics
from gateway.outbox.dispatcher import Dispatcher, DispatchLimits
from gateway.outbox.retry import RetryPolicy
from gateway.store import base
from gateway.store.sqlite import SQLiteStore
from gateway.testing import FakeClock

SCHEDULE = (10.0, 60.0)
SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="
HEALTH = base.HealthPolicy(
    circuit_failure_threshold=5, circuit_cooldown_seconds=30.0, disable_after_seconds=3600.0
)


class ScriptedSender:
    """Answers each send with the next scripted status (then 200); a send can be held open
    until the test lets it go, to look at the dispatcher while a request is in flight."""

    def __init__(self, clock: FakeClock, *statuses: int) -> None:
        self.clock = clock
        self.statuses = list(statuses)
        self.sent: list[tuple[models.Delivery, tuple[str, ...]]] = []
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def send(
        self, delivery: models.Delivery, secrets: tuple[str, ...], timeout: float | None = None
    ) -> models.AttemptResult:
        self.sent.append((delivery, secrets))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return models.AttemptResult(
            started_at=self.clock.now(), duration_ms=1.0, status_code=status
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "store.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def sender(clock: FakeClock) -> ScriptedSender:
    return ScriptedSender(clock)


def dispatcher_for(
    store: SQLiteStore, sender: ScriptedSender, clock: FakeClock, concurrency: int = 4
) -> Dispatcher:
    limits = DispatchLimits(
        concurrency=concurrency,
        lease_seconds=30.0,
        poll_interval=1.0,
        claim=base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5),
        health=HEALTH,
    )
    return Dispatcher(
        store,
        sender,  # type: ignore[arg-type]  # the sender seam: anything with Sender.send
        RetryPolicy(SCHEDULE, jitter=0),
        clock,
        signing_secret=SIGNING_SECRET,
        ready=asyncio.Event(),
        limits=limits,
        metrics=Metrics(),
    )


@pytest.fixture
def dispatcher(store: SQLiteStore, sender: ScriptedSender, clock: FakeClock) -> Dispatcher:
    return dispatcher_for(store, sender, clock)


async def add_endpoint(store: SQLiteStore, clock: FakeClock, **fields: object) -> models.Endpoint:
    values: dict[str, object] = {
        "endpoint_id": models.new_id(),
        "url": "http://127.0.0.1:9/hook",
        "secret": "whsec_ZW5kcG9pbnQtc2VjcmV0LWZvci10ZXN0cw==",
        "created_at": clock.now(),
        "updated_at": clock.now(),
        **fields,
    }
    return await store.create_endpoint(models.Endpoint(**values))  # type: ignore[arg-type]


async def enqueue(
    store: SQLiteStore, clock: FakeClock, endpoint: models.Endpoint | None, count: int = 1
) -> list[str]:
    url = endpoint.url if endpoint else "http://127.0.0.1:9/callback"
    endpoint_id = endpoint.endpoint_id if endpoint else None
    new = [
        models.NewDelivery(models.new_id(), url, "run.success", b'{"ok":true}', endpoint_id)
        for _ in range(count)
    ]
    await store.enqueue_deliveries(None, new, clock.now())
    return [d.delivery_id for d in new]


async def delivery(store: SQLiteStore, delivery_id: str) -> models.Delivery:
    found = await store.get_delivery(delivery_id)
    assert found is not None
    return found


async def test_an_accepted_try_succeeds_signed_with_the_endpoints_secret(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    endpoint = await add_endpoint(store, clock)
    [delivery_id] = await enqueue(store, clock, endpoint)

    assert await dispatcher.run_once() == 1

    [(sent, secrets)] = sender.sent
    assert sent.delivery_id == delivery_id
    assert secrets == (endpoint.secret,)
    done = await delivery(store, delivery_id)
    assert done.status is models.DeliveryStatus.SUCCEEDED
    assert (done.attempts, done.last_status_code) == (1, 200)
    [attempt] = await store.list_attempts(delivery_id)
    assert attempt.result.status_code == 200


async def test_a_callback_without_endpoint_is_signed_with_the_per_url_secret(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    [delivery_id] = await enqueue(store, clock, None)

    await dispatcher.run_once()

    [(sent, secrets)] = sender.sent
    assert secrets == (signing.callback_secret(SIGNING_SECRET, sent.url),)
    assert (await delivery(store, delivery_id)).status is models.DeliveryStatus.SUCCEEDED


async def test_a_failed_try_is_retried_at_its_scheduled_time_and_not_before(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    sender.statuses = [500]
    endpoint = await add_endpoint(store, clock)
    [delivery_id] = await enqueue(store, clock, endpoint)
    start = clock.now()

    await dispatcher.run_once()

    waiting = await delivery(store, delivery_id)
    assert waiting.status is models.DeliveryStatus.PENDING
    assert (waiting.attempts, waiting.last_status_code) == (1, 500)
    assert waiting.next_attempt_at == start + SCHEDULE[0]
    clock.advance(SCHEDULE[0] - 1)
    assert await dispatcher.run_once() == 0  # not due yet
    clock.advance(1)
    assert await dispatcher.run_once() == 1
    done = await delivery(store, delivery_id)
    assert (done.status, done.attempts) == (models.DeliveryStatus.SUCCEEDED, 2)
    assert [a.result.status_code for a in await store.list_attempts(delivery_id)] == [500, 200]


async def test_a_delivery_past_its_schedule_is_dead(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    sender.statuses = [500] * (len(SCHEDULE) + 1)
    endpoint = await add_endpoint(store, clock)
    [delivery_id] = await enqueue(store, clock, endpoint)

    for _ in range(len(SCHEDULE) + 1):
        assert await dispatcher.run_once() == 1
        clock.advance(max(SCHEDULE))

    dead = await delivery(store, delivery_id)
    assert (dead.status, dead.attempts) == (models.DeliveryStatus.FAILED, len(SCHEDULE) + 1)
    assert dead.next_attempt_at is None
    assert await dispatcher.run_once() == 0


async def test_410_gone_kills_the_delivery_and_disables_the_endpoint(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    sender.statuses = [410]
    endpoint = await add_endpoint(store, clock)
    [delivery_id] = await enqueue(store, clock, endpoint)

    await dispatcher.run_once()

    assert (await delivery(store, delivery_id)).status is models.DeliveryStatus.FAILED
    disabled = await store.get_endpoint(endpoint.endpoint_id)
    assert disabled is not None
    assert disabled.state(clock.now()) == "disabled"


async def test_a_delivery_whose_endpoint_was_deleted_is_cancelled_unsent(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    endpoint = await add_endpoint(store, clock)
    [delivery_id] = await enqueue(store, clock, endpoint)
    [claimed] = await store.claim_deliveries(1, clock.now(), 30.0, dispatcher.limits.claim, None)
    assert await store.delete_endpoint(endpoint.endpoint_id)

    await dispatcher.deliver(claimed)

    assert sender.sent == []
    cancelled = await delivery(store, delivery_id)
    assert cancelled.status is models.DeliveryStatus.CANCELLED
    assert cancelled.last_error == "endpoint deleted"


async def test_a_rate_limit_defers_the_excess_without_using_an_attempt(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    endpoint = await add_endpoint(store, clock, rate_limit=1.0)
    first, second = await enqueue(store, clock, endpoint, count=2)
    start = clock.now()

    assert await dispatcher.run_once() == 2

    assert [d.delivery_id for d, _ in sender.sent] == [first]
    held = await delivery(store, second)
    assert held.status is models.DeliveryStatus.PENDING
    assert held.attempts == 0
    assert held.next_attempt_at == pytest.approx(start + 1.0)
    assert await store.list_attempts(second) == []
    assert dispatcher.held() == []
    clock.advance(1.0)
    assert await dispatcher.run_once() == 1
    assert [d.delivery_id for d, _ in sender.sent] == [first, second]
    assert (await delivery(store, second)).attempts == 1


async def test_a_failing_transform_kills_the_delivery_unsent_and_spares_the_endpoint(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender, dispatcher: Dispatcher
) -> None:
    endpoint = await add_endpoint(store, clock, transform="no_such_field")
    [delivery_id] = await enqueue(store, clock, endpoint)

    await dispatcher.run_once()

    assert sender.sent == []
    dead = await delivery(store, delivery_id)
    assert dead.status is models.DeliveryStatus.FAILED
    assert dead.last_error is not None
    assert "null" in dead.last_error
    spared = await store.get_endpoint(endpoint.endpoint_id)
    assert spared is not None
    assert (spared.consecutive_failures, spared.state(clock.now())) == (0, "active")


async def test_a_try_in_flight_is_held_and_counts_against_the_concurrency(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender
) -> None:
    dispatcher = dispatcher_for(store, sender, clock, concurrency=1)
    endpoint = await add_endpoint(store, clock)
    first, second = await enqueue(store, clock, endpoint, count=2)
    sender.hold = asyncio.Event()

    assert await dispatcher.claim() == 1
    await sender.entered.wait()
    assert list(dispatcher.held()) == [first]
    assert await dispatcher.claim() == 0  # no room while the first is in flight

    sender.hold.set()
    await dispatcher.stop()  # lets the try in flight finish and be recorded
    assert dispatcher.held() == []
    assert (await delivery(store, first)).status is models.DeliveryStatus.SUCCEEDED
    assert (await delivery(store, second)).status is models.DeliveryStatus.PENDING


async def test_a_lease_lost_while_in_flight_is_warned_about_for_that_delivery_only(
    store: SQLiteStore, clock: FakeClock, sender: ScriptedSender
) -> None:
    dispatcher = dispatcher_for(store, sender, clock, concurrency=1)
    endpoint = await add_endpoint(store, clock)
    [first] = await enqueue(store, clock, endpoint)
    sender.hold = asyncio.Event()
    assert await dispatcher.claim() == 1
    await sender.entered.wait()

    with structlog.testing.capture_logs() as logs:
        dispatcher.lost(["not-held-here", first])
        dispatcher.lost(["not-held-here"])

    assert [(entry["event"], entry["delivery_id"]) for entry in logs] == [
        ("delivery_lease_lost", first)
    ]
    assert logs[0]["log_level"] == "warning"
    sender.hold.set()
    await dispatcher.stop()
