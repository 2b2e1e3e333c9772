"""The store's retention promises, on every backend: what expired goes, in batches; what is
pending, running, replayable or a live thread's stays."""

from __future__ import annotations

import dataclasses
import json

from gateway import models
from gateway.clock import isoformat
from gateway.store import base
from gateway.store.retention import DAY, Pruned, Retention
from tests.integration.store_contract.common import (
    CLAIM,
    NOW,
    FullStore,
    new_delivery,
    new_run,
    trigger,
)
from tests.integration.store_contract.test_inspection import capture

RETENTION = Retention(
    seconds=1 * DAY,
    rejected_seconds=0.5 * DAY,
    event_seconds=0.25 * DAY,
    bin_keep=2,
    dedup_window=60.0,
)
LATER = NOW + 2 * DAY  # when the store is pruned: anything from NOW has expired


async def finished(
    store: FullStore, at: float, *, thread_id: str | None = None, sent: bool | None = None
) -> tuple[models.Run, str | None]:
    """A run that ended at ``at`` after one event, with a delivery: settled (``sent``), pending
    (``sent=False``), or none (``None``)."""
    made = trigger(received_at=at)
    run, _ = await store.create_trigger_and_run(made, new_run(thread_id=thread_id), at)
    await store.claim_runs(10, at, 30)
    await store.append_events(run.run_id, [("values", json.dumps({"n": 1}))], at)
    deliveries = [] if sent is None else [new_delivery()]
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, {"ok": 1}, None, deliveries)
    await store.finish_run(ending, at)
    if sent:
        [claimed] = await store.claim_deliveries(10, at, 30, CLAIM, run_id=run.run_id)
        result = models.AttemptResult(started_at=at, duration_ms=1.0, status_code=200)
        outcome = base.AttemptOutcome(result, models.DeliveryStatus.SUCCEEDED)
        await store.record_attempt(claimed, outcome)
    return run, deliveries[0].delivery_id if deliveries else None


async def prune_all(store: FullStore, now: float, batch: int = 2) -> Pruned:
    total = Pruned()
    cutoffs = RETENTION.cutoffs(now)
    while True:
        pruned = await store.prune(cutoffs, batch)
        total += pruned
        if not pruned.filled(batch):
            return total


async def test_expired_records_go_and_pending_or_running_ones_stay(store: FullStore) -> None:
    sent = [await finished(store, NOW, sent=True) for _ in range(3)]
    waiting, waiting_delivery = await finished(store, NOW, sent=False)
    quiet, _ = await finished(store, NOW)
    recent, recent_delivery = await finished(store, LATER - 0.1 * DAY, sent=True)
    running, _ = await store.create_trigger_and_run(trigger(received_at=NOW), new_run(), NOW)
    await store.claim_runs(10, NOW, 30)
    rejected = dataclasses.replace(trigger(received_at=NOW), verification="rejected: bad")
    await store.store_rejected_trigger(rejected)

    expected = Pruned(deliveries=3, attempts=3, events=5, runs=4, triggers=4, rejected_triggers=1)
    assert await store.count_prunable(RETENTION.cutoffs(LATER)) == expected
    assert await prune_all(store, LATER) == expected
    assert await prune_all(store, LATER) == Pruned(), "nothing is left to prune"

    for run, delivery_id in sent:
        assert await store.get_run(run.run_id) is None
        assert delivery_id is not None
        assert await store.get_delivery(delivery_id) is None
        assert await store.list_attempts(delivery_id) == []
        assert run.trigger_id is not None
        assert await store.get_trigger(run.trigger_id) is None
    assert await store.get_run(quiet.run_id) is None
    assert await store.get_trigger(rejected.trigger_id) is None

    assert waiting_delivery is not None
    pending = await store.get_delivery(waiting_delivery)
    assert pending is not None
    assert pending.status is models.DeliveryStatus.PENDING
    assert await store.get_run(waiting.run_id) is not None, "a pending delivery keeps its run"
    assert waiting.trigger_id is not None
    assert await store.get_trigger(waiting.trigger_id)
    assert await store.list_events(waiting.run_id) == [], "a finished run's event log expires"

    assert recent_delivery is not None
    assert await store.get_delivery(recent_delivery)
    assert await store.get_run(recent.run_id) is not None
    assert [e.event for e in await store.list_events(recent.run_id)] == ["values"]

    still = await store.get_run(running.run_id)
    assert still is not None
    assert still.status is models.RunStatus.RUNNING
    assert running.trigger_id is not None
    assert await store.get_trigger(running.trigger_id)


async def test_a_replayed_delivery_stays_with_its_run(store: FullStore) -> None:
    run, delivery_id = await finished(store, NOW, sent=True)
    assert delivery_id is not None
    replayed = await store.retry_delivery(delivery_id, LATER)
    assert replayed is not None
    assert replayed.status is models.DeliveryStatus.PENDING
    assert await prune_all(store, LATER) == Pruned(events=1)
    assert await store.get_delivery(delivery_id) is not None
    assert await store.get_run(run.run_id) is not None


async def test_a_thread_keeps_its_runs_and_stateless_runs_expire(store: FullStore) -> None:
    await store.create_thread(models.Thread("t-kept", {}, {}, NOW, NOW), "raise")
    owned, _ = await finished(store, NOW, thread_id="t-kept")
    stateless, _ = await finished(store, NOW, thread_id="t-never-stored")
    assert await prune_all(store, LATER) == Pruned(events=1, runs=1, triggers=1)
    assert await store.get_run(stateless.run_id) is None
    assert await store.get_run(owned.run_id) is not None
    assert len(await store.list_events(owned.run_id)) == 1


def ttl(minutes: float, at: float = NOW) -> dict[str, object]:
    return {
        "strategy": "delete",
        "ttl_minutes": minutes,
        "expires_at": isoformat(at + minutes * 60),
    }


async def test_threads_go_when_their_ttl_ends_unless_busy(store: FullStore) -> None:
    for thread_id, thread_ttl in (
        ("t-expired", ttl(10)),
        ("t-busy", ttl(10)),
        ("t-later", ttl(60)),
        ("t-kept", {**ttl(10), "strategy": "keep_latest"}),
        ("t-extended", ttl(10)),
        ("t-none", None),
    ):
        await store.create_thread(
            models.Thread(thread_id, {}, {}, NOW, NOW, ttl=thread_ttl), "raise"
        )
    await finished(store, NOW, thread_id="t-expired")
    await store.add_thread_state("t-expired", models.new_id(), {"v": 1}, None, NOW)
    busy = await store.create_run(new_run(thread_id="t-busy"), NOW)
    await store.update_thread("t-extended", {}, NOW + 5 * 60, ttl(30, NOW + 5 * 60))

    cutoffs = RETENTION.cutoffs(NOW + 20 * 60)
    assert (await store.count_prunable(cutoffs)).threads == 1
    assert (await store.prune(cutoffs, 10)).threads == 1
    assert await store.get_thread("t-expired") is None
    assert await store.list_checkpoints("t-expired") == []
    for kept in ("t-busy", "t-later", "t-kept", "t-extended", "t-none"):
        assert await store.get_thread(kept) is not None, kept
    assert await store.get_run(busy.run_id) is not None


async def test_bins_keep_their_newest_captures(store: FullStore) -> None:
    for bin_id in ("b1", "b2"):
        await store.create_bin(models.Bin(bin_id, bin_id, NOW))
    ids = [(await store.capture_request(capture("b1"), keep=100)).capture_id for _ in range(5)]
    await store.capture_request(capture("b2"), keep=100)
    assert await prune_all(store, NOW) == Pruned(captures=3)
    assert [c.capture_id for c in await store.list_captures("b1")] == ids[:-3:-1]
    assert len(await store.list_captures("b2")) == 1


async def test_a_retention_of_zero_keeps_everything(store: FullStore) -> None:
    await finished(store, NOW, sent=True)
    forever = dataclasses.replace(RETENTION, seconds=0, event_seconds=0, rejected_seconds=0)
    cutoffs = forever.cutoffs(NOW + 1000 * DAY)
    assert await store.count_prunable(cutoffs) == Pruned()
    assert await store.prune(cutoffs, 10) == Pruned()
