"""The store's promises for relaying, on every backend: pull endpoints' deliveries claimed by
consumers in order and shared between them, acknowledged on the try each consumer holds;
filtered routes; relay fields and delivery headers kept as written."""

from __future__ import annotations

import asyncio

import pytest

from gateway import errors, models
from gateway.store import base
from tests.integration.store_contract.common import (
    CLAIM,
    NOW,
    FullStore,
    OpenStore,
    endpoint,
    new_run,
)

HEALTH = base.HealthPolicy(
    circuit_failure_threshold=3, circuit_cooldown_seconds=60, disable_after_seconds=3600
)
OK = models.AttemptResult(started_at=NOW, duration_ms=4, status_code=200)
REFUSED = models.AttemptResult(started_at=NOW, duration_ms=4, status_code=500, response_body=b"x")


async def pull_endpoint(store: FullStore, **fields: object) -> models.Endpoint:
    return await store.create_endpoint(endpoint(url="", mode="pull", **fields))


async def enqueued(store: FullStore, endpoint_id: str, count: int, at: float = NOW) -> list[str]:
    """``count`` deliveries to the endpoint, created one after another."""
    ids = []
    for n in range(count):
        delivery = models.NewDelivery(
            models.new_id(), "", "run.success", f'{{"n":{n}}}'.encode(), endpoint_id
        )
        await store.enqueue_deliveries(None, [delivery], at + n / 1000)
        ids.append(delivery.delivery_id)
    return ids


def acked(
    result: models.AttemptResult, status: models.DeliveryStatus, **fields: object
) -> base.AttemptOutcome:
    return base.AttemptOutcome(result, status, health=HEALTH, **fields)  # type: ignore[arg-type]


async def test_a_consumer_claims_a_pull_endpoints_deliveries_oldest_first(store: FullStore) -> None:
    pulled = await pull_endpoint(store)
    ids = await enqueued(store, pulled.endpoint_id, 4)
    assert await store.claim_deliveries(10, NOW + 1, 30, CLAIM) == [], "never pushed"
    assert await store.next_due_at() is None, "nothing for the dispatcher to wake for"
    first = await store.claim_pulled(pulled.endpoint_id, 3, NOW + 1, 30, CLAIM)
    assert [d.delivery_id for d in first] == ids[:3]
    assert all(d.attempts == 1 for d in first)
    [started] = await store.list_attempts(ids[0])
    assert (started.attempt, started.result.status_code, started.result.error) == (1, None, None)
    rest = await store.claim_pulled(pulled.endpoint_id, 3, NOW + 1, 30, CLAIM)
    assert [d.delivery_id for d in rest] == ids[3:], "the leased ones are held"


async def test_an_unacknowledged_delivery_comes_back_when_its_lease_lapses(
    store: FullStore,
) -> None:
    pulled = await pull_endpoint(store)
    [delivery_id] = await enqueued(store, pulled.endpoint_id, 1)
    [first] = await store.claim_pulled(pulled.endpoint_id, 10, NOW, 5, CLAIM)
    assert await store.claim_pulled(pulled.endpoint_id, 10, NOW + 4, 5, CLAIM) == []
    [again] = await store.claim_pulled(pulled.endpoint_id, 10, NOW + 6, 5, CLAIM)
    assert (again.delivery_id, again.attempts) == (delivery_id, 2), "the same webhook-id"
    with pytest.raises(errors.Conflict, match="no longer current"):
        await store.ack_pulled(
            delivery_id, first.attempts, acked(OK, models.DeliveryStatus.SUCCEEDED)
        )
    found = await store.ack_pulled(delivery_id, 2, acked(OK, models.DeliveryStatus.SUCCEEDED))
    assert found is not None
    assert (found[0].status, found[1]) == (models.DeliveryStatus.SUCCEEDED, None)


async def test_an_acknowledgement_records_the_try_and_a_repeat_changes_nothing(
    store: FullStore,
) -> None:
    pulled = await pull_endpoint(store)
    [delivery_id] = await enqueued(store, pulled.endpoint_id, 1)
    [claimed] = await store.claim_pulled(pulled.endpoint_id, 10, NOW, 30, CLAIM)
    retry = acked(REFUSED, models.DeliveryStatus.PENDING, next_attempt_at=NOW + 5)
    found = await store.ack_pulled(delivery_id, claimed.attempts, retry)
    assert found is not None
    stored, _ = found
    assert (stored.status, stored.next_attempt_at, stored.last_status_code) == (
        models.DeliveryStatus.PENDING,
        NOW + 5,
        500,
    )
    again = await store.ack_pulled(delivery_id, claimed.attempts, retry)
    assert again is not None
    assert again[0].next_attempt_at == NOW + 5
    [attempt] = await store.list_attempts(delivery_id)
    assert (attempt.result.status_code, attempt.result.response_body) == (500, b"x")
    assert await store.claim_pulled(pulled.endpoint_id, 10, NOW + 4, 30, CLAIM) == []
    [retried] = await store.claim_pulled(pulled.endpoint_id, 10, NOW + 5, 30, CLAIM)
    assert retried.attempts == 2
    assert await store.ack_pulled(models.new_id(), 1, retry) is None


async def test_consumers_share_an_endpoints_deliveries(new_store: OpenStore) -> None:
    consumers = [new_store() for _ in range(3)]
    for consumer in consumers:
        await consumer.open()
    pulled = await pull_endpoint(consumers[0])
    ids = await enqueued(consumers[0], pulled.endpoint_id, 12)
    batches = await asyncio.gather(
        *(
            consumer.claim_pulled(pulled.endpoint_id, 3, NOW + 1, 30, CLAIM)
            for consumer in consumers * 2
        )
    )
    claimed = [d.delivery_id for batch in batches for d in batch]
    assert sorted(claimed) == sorted(ids), "each delivery to exactly one consumer"
    for batch in batches:
        assert [d.created_at for d in batch] == sorted(d.created_at for d in batch)


async def test_a_held_pull_endpoint_hands_out_nothing_and_a_failing_one_one_at_a_time(
    store: FullStore,
) -> None:
    paused = await pull_endpoint(store, enabled=False)
    await enqueued(store, paused.endpoint_id, 1)
    assert await store.claim_pulled(paused.endpoint_id, 10, NOW + 1, 30, CLAIM) == []
    pushed = await store.create_endpoint(endpoint())
    await enqueued(store, pushed.endpoint_id, 1)
    assert await store.claim_pulled(pushed.endpoint_id, 10, NOW + 1, 30, CLAIM) == []

    failing = await pull_endpoint(store, consecutive_failures=CLAIM.circuit_failure_threshold)
    await enqueued(store, failing.endpoint_id, 3)
    [probe] = await store.claim_pulled(failing.endpoint_id, 10, NOW + 1, 30, CLAIM)
    assert await store.claim_pulled(failing.endpoint_id, 10, NOW + 1, 30, CLAIM) == []
    await store.ack_pulled(probe.delivery_id, 1, acked(OK, models.DeliveryStatus.SUCCEEDED))
    assert len(await store.claim_pulled(failing.endpoint_id, 10, NOW + 2, 30, CLAIM)) == 2


async def test_failed_acknowledgements_move_the_endpoints_health(store: FullStore) -> None:
    pulled = await pull_endpoint(store)
    ids = await enqueued(store, pulled.endpoint_id, 3)
    claimed = await store.claim_pulled(pulled.endpoint_id, 10, NOW + 1, 30, CLAIM)
    changes = []
    for delivery in claimed:
        found = await store.ack_pulled(
            delivery.delivery_id,
            delivery.attempts,
            acked(REFUSED, models.DeliveryStatus.PENDING, next_attempt_at=NOW + 60),
        )
        assert found is not None
        changes.append(found[1])
    assert [c.event_type if c else None for c in changes] == [None, None, "endpoint.circuit_opened"]
    now_held = await store.get_endpoint(pulled.endpoint_id)
    assert now_held is not None
    assert now_held.consecutive_failures == len(ids)


async def test_filtered_routes_are_recorded_with_the_run_ending(store: FullStore) -> None:
    run = await store.create_run(new_run(), NOW)
    await store.claim_runs(1, NOW, 30)
    skipped = models.FilteredRoute(
        run.run_id, models.new_id(), "run.success", "the filter x did not match", NOW
    )
    ending = base.RunEnding(
        run.run_id, models.RunStatus.SUCCESS, None, None, [], filtered=[skipped]
    )
    assert await store.finish_run(ending, NOW) is not None
    assert await store.list_filtered(run.run_id) == [skipped]
    assert await store.list_filtered(models.new_id()) == []


async def test_relay_fields_and_delivery_headers_are_kept_as_written(store: FullStore) -> None:
    created = await store.create_endpoint(
        endpoint(
            payload="raw",
            forward_headers=("X-GitHub-Event",),
            filter="headers.a == 'b'",
            transform="{{ payload | tojson }}",
            transform_language="jinja",
        )
    )
    assert await store.get_endpoint(created.endpoint_id) == created
    cleared = await store.update_endpoint(
        created.endpoint_id, {"forward_headers": (), "filter": None, "transform": None}, NOW + 1
    )
    assert cleared is not None
    assert (cleared.forward_headers, cleared.filter, cleared.transform) == ((), None, None)
    defaulted = await store.update_endpoint(created.endpoint_id, {"forward_headers": None}, NOW + 2)
    assert defaulted is not None
    assert defaulted.forward_headers is None

    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push"}
    delivery = models.NewDelivery(
        models.new_id(), "http://127.0.0.1:9/x", "run.success", b"payload=%7B%7D", headers=headers
    )
    await store.enqueue_deliveries(None, [delivery], NOW)
    stored = await store.get_delivery(delivery.delivery_id)
    assert stored is not None
    assert (stored.headers, stored.payload) == (headers, b"payload=%7B%7D")
    plain = models.NewDelivery(models.new_id(), "http://127.0.0.1:9/x", "run.success", b"{}")
    await store.enqueue_deliveries(None, [plain], NOW)
    stored = await store.get_delivery(plain.delivery_id)
    assert stored is not None
    assert stored.headers == {}
