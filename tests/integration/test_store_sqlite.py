"""The store's promises, checked on a real SQLite file: leases, exclusivity, retries, group commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import models
from gateway.store import base
from gateway.store.sqlite import SQLiteStore

NOW = 1_800_000_000.0
CLAIM = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    sqlite_store = SQLiteStore(tmp_path / "store.db")
    await sqlite_store.open()
    yield sqlite_store
    await sqlite_store.close()


def new_run(flow_id: str = "echo") -> base.NewRun:
    return base.NewRun(models.new_id(), flow_id, {"n": 1}, {"webhook": None}, {})


def trigger(key: str | None = None, flow_id: str = "echo") -> models.Trigger:
    return models.Trigger(
        trigger_id=models.new_id(),
        flow_id=flow_id,
        received_at=NOW,
        method="POST",
        path=f"/api/v1/webhook/{flow_id}",
        query="",
        headers={},
        body=b"{}",
        content_type="application/json",
        source="127.0.0.1",
        idempotency_key=key,
    )


async def finished_with_delivery(store: SQLiteStore) -> tuple[models.Run, str]:
    run = await store.create_run(new_run(), NOW)
    [claimed] = await store.claim_runs(1, NOW, 30)
    delivery = models.NewDelivery(models.new_id(), "http://127.0.0.1:9/x", "run.success", b"{}")
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, {"ok": True}, None, [delivery])
    assert await store.finish_run(ending, NOW) is not None
    return claimed, delivery.delivery_id


async def test_a_claimed_run_is_not_claimed_again_until_its_lease_expires(
    store: SQLiteStore,
) -> None:
    run = await store.create_run(new_run(), NOW)
    [claimed] = await store.claim_runs(10, NOW, lease_seconds=30)
    assert (claimed.run_id, claimed.status, claimed.attempt) == (run.run_id, "running", 1)
    assert await store.claim_runs(10, NOW + 29, 30) == []
    [again] = await store.claim_runs(10, NOW + 31, 30)
    assert (again.run_id, again.attempt) == (run.run_id, 2)


async def test_concurrent_claims_never_share_a_run(store: SQLiteStore) -> None:
    for _ in range(50):
        await store.create_run(new_run(), NOW)
    batches = await asyncio.gather(*(store.claim_runs(7, NOW, 30) for _ in range(10)))
    ids = [run.run_id for batch in batches for run in batch]
    assert len(ids) == 50
    assert len(set(ids)) == 50


async def test_finishing_twice_enqueues_deliveries_once(store: SQLiteStore) -> None:
    run, delivery_id = await finished_with_delivery(store)
    duplicate = models.NewDelivery(models.new_id(), "http://127.0.0.1:9/x", "run.success", b"{}")
    ending = base.RunEnding(run.run_id, models.RunStatus.ERROR, None, None, [duplicate])
    assert await store.finish_run(ending, NOW + 1) is None
    assert [
        d.delivery_id
        for d in await store.list_deliveries(base.DeliverySelection(run_id=run.run_id))
    ] == [delivery_id]
    finished = await store.get_run(run.run_id)
    assert finished is not None
    assert finished.status is models.RunStatus.SUCCESS


async def test_a_scheduled_retry_hides_the_delivery_until_it_is_due(store: SQLiteStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    assert claimed.delivery_id == delivery_id
    assert await store.claim_deliveries(10, NOW, 30, CLAIM) == [], "leased"
    failure = models.AttemptResult(
        started_at=NOW, duration_ms=3, status_code=500, response_body=b"no"
    )
    outcome = base.AttemptOutcome(failure, models.DeliveryStatus.PENDING, NOW + 5)
    await store.record_attempt(claimed, outcome)
    assert await store.next_due_at() == NOW + 5
    assert await store.claim_deliveries(10, NOW + 4, 30, CLAIM) == []
    [due] = await store.claim_deliveries(10, NOW + 5, 30, CLAIM)
    assert (due.attempts, due.last_status_code) == (2, 500), "the claim counts the try it starts"
    attempt, _ = await store.list_attempts(delivery_id)
    assert (attempt.attempt, attempt.result.response_body) == (1, b"no")


async def test_an_expired_delivery_lease_is_claimed_again(store: SQLiteStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    assert len(await store.claim_deliveries(10, NOW, 30, CLAIM)) == 1
    [again] = await store.claim_deliveries(10, NOW + 31, 30, CLAIM)
    assert again.delivery_id == delivery_id


def outcome_of(attempt: models.Attempt) -> tuple[int, int | None, str | None]:
    return attempt.attempt, attempt.result.status_code, attempt.result.error


async def test_a_claim_records_its_try_as_started_before_anything_is_sent(
    store: SQLiteStore,
) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    assert claimed.attempts == 1
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [(1, None, None)]
    ok = models.AttemptResult(started_at=NOW + 1, duration_ms=2, status_code=204)
    await store.record_attempt(claimed, base.AttemptOutcome(ok, models.DeliveryStatus.SUCCEEDED))
    [attempt] = await store.list_attempts(delivery_id)
    assert (outcome_of(attempt), attempt.result.started_at) == ((1, 204, None), NOW + 1)
    delivery = await store.get_delivery(delivery_id)
    assert delivery is not None
    assert delivery.attempts == 1


async def test_a_try_whose_lease_ran_out_has_an_unknown_outcome_and_counts(
    store: SQLiteStore,
) -> None:
    """The process sending it stopped: the next claim settles it as unknown and counts it."""
    _, delivery_id = await finished_with_delivery(store)
    [first] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    [again] = await store.claim_deliveries(10, NOW + 31, 30, CLAIM)
    assert again.attempts == 2
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [
        (1, None, base.ATTEMPT_OUTCOME_UNKNOWN),
        (2, None, None),
    ]
    # A sender that was only slow still records what really happened to its try.
    late = models.AttemptResult(started_at=NOW, duration_ms=40_000, status_code=200)
    await store.record_attempt(first, base.AttemptOutcome(late, models.DeliveryStatus.SUCCEEDED))
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [
        (1, 200, None),
        (2, None, None),
    ]


async def test_an_abandoned_try_is_settled_even_when_its_endpoint_holds_it(
    store: SQLiteStore,
) -> None:
    run = await store.create_run(new_run(), NOW)
    endpoint = models.Endpoint(
        models.new_id(), "http://127.0.0.1:9/x", "whsec_" + "A" * 32, NOW, NOW
    )
    await store.create_endpoint(endpoint)
    delivery = models.NewDelivery(
        models.new_id(), endpoint.url, "run.success", b"{}", endpoint.endpoint_id
    )
    await store.enqueue_deliveries(run.run_id, [delivery], NOW)
    assert len(await store.claim_deliveries(10, NOW, 30, CLAIM)) == 1
    await store.update_endpoint(endpoint.endpoint_id, {"enabled": False}, NOW + 1)
    assert await store.claim_deliveries(10, NOW + 31, 30, CLAIM) == []
    [attempt] = await store.list_attempts(delivery.delivery_id)
    assert outcome_of(attempt) == (1, None, base.ATTEMPT_OUTCOME_UNKNOWN)


async def test_a_deferred_delivery_uses_up_no_attempt(store: SQLiteStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    await store.defer_delivery(claimed.delivery_id, NOW + 2)
    assert await store.list_attempts(delivery_id) == []
    [due] = await store.claim_deliveries(10, NOW + 2, 30, CLAIM)
    assert due.attempts == 1
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [(1, None, None)]


async def test_idempotency_key_returns_the_first_run(store: SQLiteStore) -> None:
    first, created = await store.create_trigger_and_run(trigger("k"), new_run(), NOW)
    second, created_again = await store.create_trigger_and_run(trigger("k"), new_run(), NOW)
    other, created_other = await store.create_trigger_and_run(
        trigger("k", "agent"), new_run("agent"), NOW
    )
    assert (created, created_again, created_other) == (True, False, True)
    assert second.run_id == first.run_id
    assert other.run_id != first.run_id


async def test_many_small_writes_share_commits(store: SQLiteStore) -> None:
    before = store.writer.batches
    await asyncio.gather(
        *(store.create_trigger_and_run(trigger(), new_run(), NOW) for _ in range(200))
    )
    assert store.writer.batches - before < 200 / 4, "group commit batches concurrent writes"
    assert len(await store.claim_runs(500, NOW, 30)) == 200


async def test_a_failing_write_fails_alone(store: SQLiteStore) -> None:
    run = new_run()
    await store.create_run(run, NOW)
    results = await asyncio.gather(
        store.create_run(run, NOW),
        *(store.create_run(new_run(), NOW) for _ in range(5)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception), "duplicate primary key"
    assert all(isinstance(r, models.Run) for r in results[1:])


async def test_schema_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "again.db")
    await first.open()
    run = await first.create_run(new_run(), NOW)
    await first.close()
    second = SQLiteStore(tmp_path / "again.db")
    await second.open()
    assert await second.get_run(run.run_id) == run
    await second.close()


async def test_a_delayed_run_is_not_claimed_before_it_is_due(store: SQLiteStore) -> None:
    delayed = base.NewRun(models.new_id(), "echo", {}, {}, {}, after_seconds=60)
    run = await store.create_run(delayed, NOW)
    assert run.created_at == NOW + 60
    assert await store.claim_runs(10, NOW + 59, 30) == []
    assert [r.run_id for r in await store.claim_runs(10, NOW + 60, 30)] == [run.run_id]
