"""The store's promises for endpoints, deliveries, attempts and endpoint health, on every backend."""

from __future__ import annotations

import pytest

from gateway import models
from gateway.store import base
from tests.integration.store_contract.common import (
    CLAIM,
    NOW,
    FullStore,
    endpoint,
    finished_with_delivery,
    new_delivery,
    new_run,
)

HEALTH = base.HealthPolicy(
    circuit_failure_threshold=3, circuit_cooldown_seconds=60, disable_after_seconds=3600
)
FAILED = models.AttemptResult(started_at=NOW, duration_ms=3, status_code=500, response_body=b"no")
OK = models.AttemptResult(
    started_at=NOW, duration_ms=2, status_code=200, response_headers={"a": "b"}
)


def retry_later(result: models.AttemptResult = FAILED, **fields: object) -> base.AttemptOutcome:
    return base.AttemptOutcome(
        result,
        models.DeliveryStatus.PENDING,
        NOW + 5,
        health=HEALTH,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_scheduled_retry_hides_the_delivery_until_it_is_due(store: FullStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    assert claimed.delivery_id == delivery_id
    assert await store.claim_deliveries(10, NOW, 30, CLAIM) == [], "leased"
    outcome = base.AttemptOutcome(FAILED, models.DeliveryStatus.PENDING, NOW + 5)
    await store.record_attempt(claimed, outcome)
    assert await store.next_due_at() == NOW + 5
    assert await store.claim_deliveries(10, NOW + 4, 30, CLAIM) == []
    [due] = await store.claim_deliveries(10, NOW + 5, 30, CLAIM)
    assert (due.attempts, due.last_status_code) == (2, 500), "the claim counts the try it starts"
    attempt, _ = await store.list_attempts(delivery_id)
    assert (attempt.attempt, attempt.result.response_body) == (1, b"no")
    assert outcome_of(attempt) == (1, 500, None), "a recorded outcome is never settled again"


async def test_an_expired_delivery_lease_is_claimed_again(store: FullStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    assert len(await store.claim_deliveries(10, NOW, 30, CLAIM)) == 1
    assert await store.next_due_at() == NOW + 30
    [again] = await store.claim_deliveries(10, NOW + 31, 30, CLAIM)
    assert again.delivery_id == delivery_id


async def test_a_lease_is_over_at_the_instant_it_expires(store: FullStore) -> None:
    """On every claim: the dispatcher's, and a run's own (an endpoint with room for one try
    counts its lapsed lease as no longer in flight)."""
    capped = await store.create_endpoint(endpoint(max_concurrency=1))
    run = await store.create_run(new_run(), NOW)
    await store.claim_runs(1, NOW, 30)
    both = [new_delivery(capped.endpoint_id), new_delivery()]
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, None, None, both)
    assert await store.finish_run(ending, NOW) is not None
    ids = {d.delivery_id for d in both}
    assert {d.delivery_id for d in await store.claim_deliveries(10, NOW, 30, CLAIM)} == ids
    assert await store.claim_deliveries(10, NOW + 29.5, 30, CLAIM) == []
    assert await store.claim_deliveries(10, NOW + 29.5, 30, CLAIM, run_id=run.run_id) == []
    again = await store.claim_deliveries(10, NOW + 30, 30, CLAIM, run_id=run.run_id)
    assert {d.delivery_id for d in again} == ids
    later = await store.claim_deliveries(10, NOW + 60, 30, CLAIM)
    assert {d.delivery_id for d in later} == ids


def outcome_of(attempt: models.Attempt) -> tuple[int, int | None, str | None]:
    return attempt.attempt, attempt.result.status_code, attempt.result.error


async def test_a_claim_records_its_try_as_started_before_anything_is_sent(
    store: FullStore,
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
    store: FullStore,
) -> None:
    """The process sending it stopped: the next claim settles it as unknown and counts it."""
    _, delivery_id = await finished_with_delivery(store)
    [first] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    in_flight = new_delivery()
    await store.enqueue_deliveries(None, [in_flight], NOW + 20)
    assert len(await store.claim_deliveries(10, NOW + 20, 30, CLAIM)) == 1
    [again] = await store.claim_deliveries(10, NOW + 30, 30, CLAIM)
    assert again.attempts == 2
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [
        (1, None, base.ATTEMPT_OUTCOME_UNKNOWN),
        (2, None, None),
    ]
    assert [outcome_of(a) for a in await store.list_attempts(in_flight.delivery_id)] == [
        (1, None, None)
    ], "a try whose lease holds is not settled"
    # A sender that was only slow still records what really happened to its try.
    late = models.AttemptResult(started_at=NOW, duration_ms=40_000, status_code=200)
    await store.record_attempt(first, base.AttemptOutcome(late, models.DeliveryStatus.SUCCEEDED))
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [
        (1, 200, None),
        (2, None, None),
    ]


async def test_a_try_that_ended_in_an_error_keeps_it(store: FullStore) -> None:
    """Only tries with no outcome are settled as unknown: not one whose sender got no status."""
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    refused = models.AttemptResult(started_at=NOW, duration_ms=1, error="connection refused")
    await store.record_attempt(
        claimed, base.AttemptOutcome(refused, models.DeliveryStatus.PENDING, NOW + 5)
    )
    assert len(await store.claim_deliveries(10, NOW + 5, 30, CLAIM)) == 1
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [
        (1, None, "connection refused"),
        (2, None, None),
    ]


async def test_an_abandoned_try_is_settled_even_when_its_endpoint_holds_it(
    store: FullStore,
) -> None:
    target = await store.create_endpoint(endpoint())
    delivery = new_delivery(target.endpoint_id)
    await store.enqueue_deliveries(None, [delivery], NOW)
    assert len(await store.claim_deliveries(10, NOW, 30, CLAIM)) == 1
    await store.update_endpoint(target.endpoint_id, {"enabled": False}, NOW + 1)
    assert await store.claim_deliveries(10, NOW + 31, 30, CLAIM) == []
    [attempt] = await store.list_attempts(delivery.delivery_id)
    assert outcome_of(attempt) == (1, None, base.ATTEMPT_OUTCOME_UNKNOWN)


async def test_a_success_ends_the_delivery_and_keeps_the_attempt(store: FullStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    await store.record_attempt(claimed, base.AttemptOutcome(OK, models.DeliveryStatus.SUCCEEDED))
    done = await store.get_delivery(delivery_id)
    assert done is not None
    assert (done.status, done.attempts, done.last_status_code) == ("succeeded", 1, 200)
    assert done.updated_at == NOW + 0.002
    [attempt] = await store.list_attempts(delivery_id)
    assert attempt.result == OK
    assert await store.next_due_at() is None
    assert await store.delivery_backlog(NOW) == (0, None)


async def test_an_endpoint_gets_at_most_its_concurrency(store: FullStore) -> None:
    capped = await store.create_endpoint(endpoint(max_concurrency=2))
    await store.enqueue_deliveries(None, [new_delivery(capped.endpoint_id) for _ in range(5)], NOW)
    await store.enqueue_deliveries(None, [new_delivery() for _ in range(3)], NOW)
    claimed = await store.claim_deliveries(100, NOW, 30, CLAIM)
    assert sum(d.endpoint_id == capped.endpoint_id for d in claimed) == 2
    assert sum(d.endpoint_id is None for d in claimed) == 3
    assert await store.claim_deliveries(100, NOW, 30, CLAIM) == []
    assert await store.delivery_backlog(NOW) == (8, NOW)


async def test_claims_of_one_run_take_only_its_deliveries(store: FullStore) -> None:
    run, delivery_id = await finished_with_delivery(store)
    await store.enqueue_deliveries(None, [new_delivery()], NOW)
    claimed = await store.claim_deliveries(10, NOW, 30, CLAIM, run_id=run.run_id)
    assert [d.delivery_id for d in claimed] == [delivery_id]


async def test_a_runs_own_claim_skips_its_held_endpoints(store: FullStore) -> None:
    paused = await store.create_endpoint(endpoint(enabled=False))
    live = await store.create_endpoint(endpoint())
    run = await store.create_run(new_run(), NOW)
    await store.claim_runs(1, NOW, 30)
    held, sent = new_delivery(paused.endpoint_id), new_delivery(live.endpoint_id)
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, None, None, [held, sent])
    assert await store.finish_run(ending, NOW) is not None
    claimed = await store.claim_deliveries(10, NOW, 30, CLAIM, run_id=run.run_id)
    assert [d.delivery_id for d in claimed] == [sent.delivery_id]


async def test_held_endpoints_get_nothing(store: FullStore) -> None:
    paused = await store.create_endpoint(endpoint(enabled=False))
    disabled = await store.create_endpoint(endpoint(disabled_reason="410 Gone"))
    tripped = await store.create_endpoint(endpoint(circuit_open_until=NOW + 10))
    for held in (paused, disabled, tripped):
        await store.enqueue_deliveries(None, [new_delivery(held.endpoint_id)], NOW)
    assert await store.claim_deliveries(10, NOW, 30, CLAIM) == []
    [probe] = await store.claim_deliveries(10, NOW + 10, 30, CLAIM)
    assert probe.endpoint_id == tripped.endpoint_id


async def test_a_circuit_past_its_cool_down_lets_one_probe_through(store: FullStore) -> None:
    tripped = await store.create_endpoint(
        endpoint(consecutive_failures=CLAIM.circuit_failure_threshold, circuit_open_until=NOW)
    )
    await store.enqueue_deliveries(None, [new_delivery(tripped.endpoint_id) for _ in range(3)], NOW)
    [probe] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    assert probe.endpoint_id == tripped.endpoint_id
    assert await store.claim_deliveries(10, NOW, 30, CLAIM) == [], "one probe at a time"


async def test_the_next_due_time_counts_pushed_deliveries_only(store: FullStore) -> None:
    """A pull endpoint's deliveries wait for a consumer: the dispatcher is not woken for them."""
    pulled = await store.create_endpoint(endpoint(mode="pull"))
    pushed = await store.create_endpoint(endpoint())
    await store.enqueue_deliveries(None, [new_delivery(pulled.endpoint_id)], NOW - 10)
    assert await store.next_due_at() is None
    await store.enqueue_deliveries(None, [new_delivery(pushed.endpoint_id)], NOW)
    assert await store.next_due_at() == NOW


async def test_a_held_backlog_keeps_no_one_else_waiting(store: FullStore) -> None:
    """Each destination is claimed from its own earliest due deliveries: a paused endpoint's
    older backlog does not hold back the others, and a deleted endpoint's deliveries are
    still claimed (the dispatcher cancels them)."""
    paused = await store.create_endpoint(endpoint(enabled=False))
    gone = await store.create_endpoint(endpoint())
    live = await store.create_endpoint(endpoint())
    backlog = [new_delivery(paused.endpoint_id) for _ in range(50)]
    await store.enqueue_deliveries(None, backlog, NOW - 100)
    await store.enqueue_deliveries(None, [new_delivery(gone.endpoint_id)], NOW - 50)
    assert await store.delete_endpoint(gone.endpoint_id)
    await store.enqueue_deliveries(None, [new_delivery(live.endpoint_id) for _ in range(3)], NOW)
    await store.enqueue_deliveries(None, [new_delivery(url=f"http://h/{n}") for n in range(2)], NOW)
    claimed = await store.claim_deliveries(4, NOW, 30, CLAIM)
    assert [d.endpoint_id for d in claimed][:1] == [gone.endpoint_id]
    assert paused.endpoint_id not in {d.endpoint_id for d in claimed}
    rest = await store.claim_deliveries(10, NOW, 30, CLAIM)
    assert len(claimed) + len(rest) == 6


async def test_failures_open_the_circuit_and_a_success_closes_it(store: FullStore) -> None:
    target = await store.create_endpoint(endpoint())
    await store.enqueue_deliveries(None, [new_delivery(target.endpoint_id) for _ in range(4)], NOW)
    deliveries = await store.list_deliveries(base.DeliverySelection(endpoint_id=target.endpoint_id))
    changes = [await store.record_attempt(d, retry_later()) for d in deliveries[:3]]
    assert changes[:2] == [None, None]
    assert changes[2] == base.HealthChange("endpoint.circuit_opened", "3 failures in a row")
    opened = await store.get_endpoint(target.endpoint_id)
    assert opened is not None
    assert (opened.consecutive_failures, opened.failing_since) == (3, NOW + 0.003)
    assert opened.circuit_open_until == NOW + 0.003 + 60
    recovered = await store.record_attempt(
        deliveries[3], base.AttemptOutcome(OK, models.DeliveryStatus.SUCCEEDED, health=HEALTH)
    )
    assert recovered == base.HealthChange("endpoint.recovered", "a delivery succeeded")
    healthy = await store.get_endpoint(target.endpoint_id)
    assert healthy is not None
    assert (healthy.consecutive_failures, healthy.circuit_open_until) == (0, None)


async def test_a_410_disables_the_endpoint(store: FullStore) -> None:
    target = await store.create_endpoint(endpoint())
    await store.enqueue_deliveries(None, [new_delivery(target.endpoint_id)], NOW)
    [delivery] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    change = await store.record_attempt(delivery, retry_later(disable_endpoint="410 Gone"))
    assert change == base.HealthChange("endpoint.disabled", "410 Gone")
    disabled = await store.get_endpoint(target.endpoint_id)
    assert disabled is not None
    assert disabled.state(NOW) == "disabled"
    resumed = await store.resume_endpoint(target.endpoint_id, NOW + 1)
    assert resumed is not None
    assert (resumed.state(NOW + 1), resumed.consecutive_failures) == ("active", 0)


async def test_a_deferred_delivery_uses_up_no_attempt(store: FullStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, CLAIM)
    await store.defer_delivery(claimed.delivery_id, NOW + 7)
    assert await store.next_due_at() == NOW + 7
    assert await store.list_attempts(delivery_id) == []
    [due] = await store.claim_deliveries(10, NOW + 7, 30, CLAIM)
    assert (due.delivery_id, due.attempts) == (delivery_id, 1)
    assert [outcome_of(a) for a in await store.list_attempts(delivery_id)] == [(1, None, None)]


async def test_retry_and_replay_make_deliveries_due_now(store: FullStore) -> None:
    target = await store.create_endpoint(endpoint())
    await store.enqueue_deliveries(None, [new_delivery(target.endpoint_id) for _ in range(3)], NOW)
    deliveries = await store.list_deliveries(base.DeliverySelection(endpoint_id=target.endpoint_id))
    for delivery in deliveries:
        dead = base.AttemptOutcome(FAILED, models.DeliveryStatus.FAILED)
        await store.record_attempt(delivery, dead)
    failed = base.DeliverySelection(
        endpoint_id=target.endpoint_id, statuses=(models.DeliveryStatus.FAILED,)
    )
    assert len(await store.list_deliveries(failed)) == 3
    retried = await store.retry_delivery(deliveries[0].delivery_id, NOW + 10)
    assert retried is not None
    assert (retried.status, retried.next_attempt_at) == ("pending", NOW + 10)
    assert await store.retry_delivery("nope", NOW) is None
    assert await store.replay_deliveries(failed, NOW + 20) == 2
    assert await store.replay_deliveries(failed, NOW + 20) == 0
    pending = base.DeliverySelection(statuses=(models.DeliveryStatus.PENDING,), since=NOW)
    assert len(await store.list_deliveries(pending)) == 3
    assert await store.list_deliveries(base.DeliverySelection(until=NOW)) == []
    assert len(await store.list_deliveries(base.DeliverySelection(), limit=2)) == 2


async def test_an_endpoint_is_created_changed_rotated_and_deleted(store: FullStore) -> None:
    created = await store.create_endpoint(
        endpoint(flow_ids=("echo",), event_types=("run.success",), retry_schedule=(1.0, 2.0))
    )
    assert await store.get_endpoint(created.endpoint_id) == created
    changed = await store.update_endpoint(
        created.endpoint_id,
        {"enabled": False, "flow_ids": ["a", "b"], "retry_schedule": None, "timeout": 3.5},
        NOW + 1,
    )
    assert changed is not None
    assert (changed.enabled, changed.flow_ids, changed.retry_schedule, changed.timeout) == (
        False,
        ("a", "b"),
        None,
        3.5,
    )
    with pytest.raises(ValueError, match="not settable"):
        await store.update_endpoint(created.endpoint_id, {"consecutive_failures": 0}, NOW)
    rotated = await store.rotate_secret(created.endpoint_id, "whsec_new", NOW + 100, NOW + 2)
    assert rotated is not None
    assert rotated.signing_secrets(NOW + 50) == ("whsec_new", "whsec_x")
    assert rotated.signing_secrets(NOW + 101) == ("whsec_new",)
    other = await store.create_endpoint(endpoint(created_at=NOW + 5))
    assert [e.endpoint_id for e in await store.list_endpoints()] == [
        created.endpoint_id,
        other.endpoint_id,
    ]
    assert await store.delete_endpoint(created.endpoint_id)
    assert not await store.delete_endpoint(created.endpoint_id)
    assert await store.get_endpoint(created.endpoint_id) is None
    assert await store.update_endpoint(created.endpoint_id, {"url": "x"}, NOW) is None
