"""The store's promises for triggers, runs and events, on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from gateway import errors, models
from gateway.store import base
from tests.integration.store_contract.common import (
    NOW,
    FullStore,
    OpenStore,
    finished_with_delivery,
    new_delivery,
    new_run,
    trigger,
)


async def test_a_claimed_run_is_not_claimed_again_until_its_lease_expires(
    store: FullStore,
) -> None:
    run = await store.create_run(new_run(), NOW)
    [claimed] = await store.claim_runs(10, NOW, lease_seconds=30)
    assert (claimed.run_id, claimed.status, claimed.attempt) == (run.run_id, "running", 1)
    assert await store.claim_runs(10, NOW + 29.5, 30) == []
    [again] = await store.claim_runs(10, NOW + 30, 30)  # over at the instant it expires
    assert (again.run_id, again.attempt) == (run.run_id, 2)


async def test_concurrent_claims_never_share_a_run(store: FullStore) -> None:
    for _ in range(50):
        await store.create_run(new_run(), NOW)
    batches = await asyncio.gather(*(store.claim_runs(7, NOW, 30) for _ in range(10)))
    ids = [run.run_id for batch in batches for run in batch]
    assert len(ids) == 50
    assert len(set(ids)) == 50


async def test_claims_come_oldest_first(store: FullStore) -> None:
    older = await store.create_run(new_run(), NOW - 5)
    newer = await store.create_run(new_run(), NOW - 1)
    assert [r.run_id for r in await store.claim_runs(10, NOW, 30)] == [older.run_id, newer.run_id]


async def test_runs_of_one_thread_created_at_one_instant_run_one_at_a_time(
    store: FullStore,
) -> None:
    await store.create_thread(models.Thread("t", {}, {"configurable": {}}, NOW, NOW), "raise")
    for run_id in ("run-b", "run-a"):
        await store.create_run(dataclasses.replace(new_run(thread_id="t"), run_id=run_id), NOW)
    [first] = await store.claim_runs(10, NOW, 30)
    assert first.run_id == "run-a", "at one instant, the smaller id goes first"
    assert await store.claim_runs(10, NOW, 30) == [], "the thread's other run waits"
    ending = base.RunEnding("run-a", models.RunStatus.SUCCESS, None, None, [])
    assert await store.finish_run(ending, NOW + 1) is not None
    [second] = await store.claim_runs(10, NOW + 1, 30)
    assert second.run_id == "run-b"


async def test_a_run_stored_already_claimed_is_running_with_its_lease(store: FullStore) -> None:
    run = await store.create_run(new_run(lease_until=NOW + 30), NOW)
    assert (run.status, run.attempt, run.started_at) == (models.RunStatus.RUNNING, 1, NOW)
    assert await store.claim_runs(10, NOW + 29, 30) == []
    assert [r.run_id for r in await store.claim_runs(10, NOW + 31, 30)] == [run.run_id]


async def test_a_run_asked_claimed_on_a_busy_thread_is_stored_pending(store: FullStore) -> None:
    first = await store.create_run(new_run(thread_id="t", lease_until=NOW + 30), NOW)
    assert first.status is models.RunStatus.RUNNING, "a free thread: stored claimed"
    second = await store.create_run(new_run(thread_id="t", lease_until=NOW + 30), NOW + 1)
    assert (second.status, second.attempt) == (models.RunStatus.PENDING, 0)
    assert await store.claim_runs(10, NOW + 2, 30) == [], "it waits for the thread"
    ending = base.RunEnding(first.run_id, models.RunStatus.SUCCESS, None, None, [])
    assert await store.finish_run(ending, NOW + 3) is not None
    assert [r.run_id for r in await store.claim_runs(10, NOW + 3, 30)] == [second.run_id]
    third = await store.create_run(new_run(thread_id="t", lease_until=NOW + 30), NOW + 4)
    assert third.status is models.RunStatus.PENDING, "the thread's run is running"
    other = await store.create_run(new_run(thread_id="u", lease_until=NOW + 30), NOW + 4)
    assert other.status is models.RunStatus.RUNNING, "another thread is free"
    await store.create_run(new_run(thread_id="v"), NOW + 5)  # pending, not claimed by anyone
    behind = await store.create_run(new_run(thread_id="v", lease_until=NOW + 30), NOW + 5)
    assert behind.status is models.RunStatus.PENDING, "a pending run holds the thread too"


async def test_a_run_stored_claimed_starts_no_earlier_than_its_thread_last_run_ended(
    store: FullStore,
) -> None:
    """``now`` read before a wait (a connection, the thread's lock) can be older than the end
    of the thread's last run, written meanwhile: the new run's start is not."""
    first = await store.create_run(new_run(thread_id="t", lease_until=NOW + 30), NOW)
    ending = base.RunEnding(first.run_id, models.RunStatus.SUCCESS, None, None, [])
    assert await store.finish_run(ending, NOW + 5) is not None
    second = await store.create_run(new_run(thread_id="t", lease_until=NOW + 30), NOW + 3)
    assert second.status is models.RunStatus.RUNNING
    assert second.started_at == NOW + 5
    later = await store.create_run(new_run(thread_id="t2", lease_until=NOW + 30), NOW + 3)
    assert later.started_at == NOW + 3, "a thread without ended runs starts now"


async def test_finishing_twice_enqueues_deliveries_once(store: FullStore) -> None:
    run, delivery_id = await finished_with_delivery(store)
    duplicate = new_delivery()
    ending = base.RunEnding(run.run_id, models.RunStatus.ERROR, None, None, [duplicate])
    assert await store.finish_run(ending, NOW + 1) is None
    assert [
        d.delivery_id
        for d in await store.list_deliveries(base.DeliverySelection(run_id=run.run_id))
    ] == [delivery_id]
    finished = await store.get_run(run.run_id)
    assert finished is not None
    assert finished.status is models.RunStatus.SUCCESS
    assert (finished.output, finished.ended_at) == ({"ok": True}, NOW)


async def test_a_run_ending_appends_its_final_event(store: FullStore) -> None:
    run = await store.create_run(new_run(), NOW)
    first, second = await store.append_events(
        run.run_id,
        [("values", json.dumps({"step": 1})), ("values", json.dumps({"step": 2}))],
        NOW,
    )
    ending = base.RunEnding(
        run.run_id,
        models.RunStatus.ERROR,
        None,
        {"error": "Boom", "message": "no"},
        [],
        events=[("values", json.dumps({"step": 3})), ("end", json.dumps({"status": "error"}))],
    )
    ended = await store.finish_run(ending, NOW + 1)
    assert ended is not None
    stored = await store.get_run(run.run_id)
    assert stored is not None
    assert stored.error == {"error": "Boom", "message": "no"}
    events = await store.list_events(run.run_id)
    assert [(e.event, e.data) for e in events] == [
        ("values", {"step": 1}),
        ("values", {"step": 2}),
        ("values", {"step": 3}),
        ("end", {"status": "error"}),
    ]
    assert list(ended.event_ids) == [e.id for e in events[2:]]  # the ending's own, in order
    assert events[0].id == first < events[1].id == second < events[2].id
    assert [e.event for e in await store.list_events(run.run_id, after_id=second)] == [
        "values",
        "end",
    ]


async def test_released_runs_are_claimed_again(store: FullStore) -> None:
    run = await store.create_run(new_run(), NOW)
    await store.claim_runs(1, NOW, 30)
    await store.release_runs([run.run_id], NOW + 1)
    released = await store.get_run(run.run_id)
    assert released is not None
    assert released.status is models.RunStatus.PENDING
    [again] = await store.claim_runs(1, NOW + 1, 30)
    assert (again.run_id, again.attempt) == (run.run_id, 2)


async def test_idempotency_key_returns_the_first_run(store: FullStore) -> None:
    first, created = await store.create_trigger_and_run(trigger("k"), new_run(), NOW)
    second, created_again = await store.create_trigger_and_run(trigger("k"), new_run(), NOW)
    other, created_other = await store.create_trigger_and_run(
        trigger("k", "agent"), new_run("agent"), NOW
    )
    assert (created, created_again, created_other) == (True, False, True)
    assert second.run_id == first.run_id
    assert other.run_id != first.run_id


async def test_an_idempotency_key_holds_for_its_window_and_ends_with_it(
    store: FullStore,
) -> None:
    def at(received_at: float) -> models.Trigger:
        return trigger("k", received_at=received_at, dedup_window=50.0)

    first, _ = await store.create_trigger_and_run(at(NOW - 50), new_run(), NOW - 50)
    repeated, created_within = await store.create_trigger_and_run(
        at(NOW - 0.5), new_run(), NOW - 0.5
    )
    assert (repeated.run_id, created_within) == (first.run_id, False)
    # exactly one window after the first: a new run
    second, created = await store.create_trigger_and_run(at(NOW), new_run(), NOW)
    assert created
    assert second.run_id != first.run_id
    # a window widened since (a new setting) holds both runs: the latest one answers
    wide = trigger("k", received_at=NOW + 1, dedup_window=500.0)
    latest, created_again = await store.create_trigger_and_run(wide, new_run(), NOW + 1)
    assert (latest.run_id, created_again) == (second.run_id, False)


async def test_concurrent_triggers_with_one_key_start_one_run(store: FullStore) -> None:
    results = await asyncio.gather(
        *(store.create_trigger_and_run(trigger("same"), new_run(), NOW) for _ in range(20))
    )
    assert sum(created for _, created in results) == 1
    assert len({run.run_id for run, _ in results}) == 1


async def test_a_trigger_is_kept_as_received(store: FullStore) -> None:
    received = trigger("k")
    run, _ = await store.create_trigger_and_run(received, new_run(), NOW)
    stored = await store.get_trigger(received.trigger_id)
    assert stored == models.Trigger(**{**received.__dict__, "run_id": run.run_id})
    assert run.trigger_id == received.trigger_id
    rejected = trigger(verification="rejected: bad signature")
    await store.store_rejected_trigger(rejected)
    kept = await store.get_trigger(rejected.trigger_id)
    assert kept is not None
    assert (kept.run_id, kept.rejected, kept.body) == (None, True, rejected.body)
    assert await store.get_trigger("nope") is None


async def test_a_failing_write_fails_alone(store: FullStore) -> None:
    run = new_run()
    await store.create_run(run, NOW)
    results = await asyncio.gather(
        store.create_run(run, NOW),
        *(store.create_run(new_run(), NOW) for _ in range(5)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception), "duplicate primary key"
    assert all(isinstance(r, models.Run) for r in results[1:])


async def test_schema_survives_reopening(store: FullStore, new_store: OpenStore) -> None:
    run = await store.create_run(new_run(), NOW)
    await store.close()
    second = new_store()
    await second.open()
    assert await second.get_run(run.run_id) == run


async def test_a_delayed_run_is_not_claimed_before_it_is_due(store: FullStore) -> None:
    delayed = base.NewRun(models.new_id(), "echo", {}, {}, {}, after_seconds=60)
    run = await store.create_run(delayed, NOW)
    assert run.created_at == NOW + 60
    assert await store.claim_runs(10, NOW + 59, 30) == []
    assert [r.run_id for r in await store.claim_runs(10, NOW + 60, 30)] == [run.run_id]


async def test_a_thread_runs_one_run_at_a_time_in_order(store: FullStore) -> None:
    thread = models.Thread("t1", {}, {}, NOW, NOW)
    await store.create_thread(thread, "raise")
    first = await store.create_run(new_run(thread_id="t1"), NOW)
    second = await store.create_run(new_run(thread_id="t1"), NOW + 1)
    loose = await store.create_run(new_run(), NOW + 2)
    claimed = await asyncio.gather(*(store.claim_runs(10, NOW + 3, 30) for _ in range(3)))
    assert sorted(r.run_id for batch in claimed for r in batch) == sorted(
        [first.run_id, loose.run_id]
    )
    ending = base.RunEnding(first.run_id, models.RunStatus.SUCCESS, 1, None, [])
    await store.finish_run(ending, NOW + 4)
    assert [r.run_id for r in await store.claim_runs(10, NOW + 4, 30)] == [second.run_id]


async def test_ping_answers_while_open(store: FullStore) -> None:
    await store.ping()
    assert store.write_backlog() == 0


@pytest.mark.parametrize("status", [models.RunStatus.TIMEOUT, models.RunStatus.INTERRUPTED])
async def test_an_ended_run_is_never_claimed(store: FullStore, status: models.RunStatus) -> None:
    run = await store.create_run(new_run(), NOW)
    await store.finish_run(base.RunEnding(run.run_id, status, None, None, []), NOW)
    assert await store.claim_runs(10, NOW + 1000, 30) == []


async def test_a_run_that_needs_its_thread_idle_is_refused_while_it_is_busy(
    store: FullStore,
) -> None:
    await store.create_thread(models.Thread("t1", {}, {}, NOW, NOW), "raise")
    attempts = [new_run(thread_id="t1", if_thread_idle=True) for _ in range(10)]
    results = await asyncio.gather(
        *(store.create_run(run, NOW) for run in attempts), return_exceptions=True
    )
    assert len([r for r in results if isinstance(r, models.Run)]) == 1
    assert all(isinstance(r, errors.Conflict) for r in results if not isinstance(r, models.Run))
    assert len(await store.inflight_runs("t1")) == 1
    queued = await store.create_run(new_run(thread_id="t1"), NOW)
    assert queued.status is models.RunStatus.PENDING
