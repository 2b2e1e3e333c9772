"""The store's promises for the ``/inspect`` read side and bins, on every backend."""

from __future__ import annotations

import dataclasses

from gateway import models
from gateway.store import base
from tests.integration.store_contract.common import (
    NOW,
    FullStore,
    finished_with_delivery,
    new_run,
    trigger,
)


def capture(bin_id: str, body: bytes = b"{}", **fields: object) -> models.CapturedRequest:
    values: dict[str, object] = {
        "bin_id": bin_id,
        "received_at": NOW,
        "method": "POST",
        "path": f"/inspect/bins/{bin_id}",
        "query": "",
        "headers": {"content-type": "application/json"},
        "body": body,
        "content_type": "application/json",
        "source": "127.0.0.1",
        **fields,
    }
    return models.CapturedRequest(**values)  # type: ignore[arg-type]


async def test_triggers_are_listed_newest_first_and_searched(store: FullStore) -> None:
    old = trigger(received_at=NOW - 10)
    await store.create_trigger_and_run(old, new_run(), NOW - 10)
    new = dataclasses.replace(trigger(flow_id="agent"), body=b'{"needle": "Haystack"}')
    await store.create_trigger_and_run(new, new_run("agent"), NOW)
    binary = dataclasses.replace(trigger(received_at=NOW + 1), body=b"\xff\x00\xfe needle")
    await store.store_rejected_trigger(binary)
    listed = await store.list_triggers(base.TriggerSelection())
    assert [t.trigger_id for t in listed] == [binary.trigger_id, new.trigger_id, old.trigger_id]
    assert [
        t.trigger_id for t in await store.list_triggers(base.TriggerSelection(search="HAYSTACK"))
    ] == [new.trigger_id]
    needle = await store.list_triggers(base.TriggerSelection(search="needle"))
    assert {t.trigger_id for t in needle} == {new.trigger_id, binary.trigger_id}
    by_flow = base.TriggerSelection(flow_id="echo")
    after_binary = base.Position(binary.received_at, binary.trigger_id)
    assert [t.trigger_id for t in await store.list_triggers(by_flow, after=after_binary)] == [
        old.trigger_id
    ]
    assert len(await store.list_triggers(base.TriggerSelection(), limit=1)) == 1


async def test_runs_are_listed_by_flow_status_and_search(store: FullStore) -> None:
    first = await store.create_run(new_run(), NOW - 5)
    second = await store.create_run(new_run("agent"), NOW)
    await store.claim_runs(1, NOW, 30)
    assert [r.run_id for r in await store.list_runs(base.RunSelection())] == [
        second.run_id,
        first.run_id,
    ]
    running = base.RunSelection(status=models.RunStatus.RUNNING)
    assert [r.run_id for r in await store.list_runs(running)] == [first.run_id]
    assert [r.run_id for r in await store.list_runs(base.RunSelection(flow_id="agent"))] == [
        second.run_id
    ]
    search = base.RunSelection(search=second.run_id[-12:].upper())
    assert [r.run_id for r in await store.list_runs(search)] == [second.run_id]


async def test_deliveries_are_found_by_flow(store: FullStore) -> None:
    _, delivery_id = await finished_with_delivery(store)
    found = await store.list_deliveries(base.DeliverySelection(flow_id="echo"))
    assert [d.delivery_id for d in found] == [delivery_id]
    assert await store.list_deliveries(base.DeliverySelection(flow_id="agent")) == []


async def test_counts_cover_everything_and_what_is_recent(store: FullStore) -> None:
    await store.create_trigger_and_run(trigger(received_at=NOW - 100), new_run(), NOW - 100)
    await store.store_rejected_trigger(trigger(verification="rejected: bad"))
    _, _ = await finished_with_delivery(store)
    [claimed] = await store.claim_deliveries(10, NOW, 30, base.ClaimPolicy(10, 5))
    ok = models.AttemptResult(started_at=NOW, duration_ms=1, status_code=204)
    await store.record_attempt(claimed, base.AttemptOutcome(ok, models.DeliveryStatus.SUCCEEDED))
    counts = await store.inspect_counts(NOW - 1)
    assert counts == base.InspectCounts(
        triggers=2,
        triggers_since=1,
        rejected_since=1,
        runs={"running": 1, "success": 1},
        runs_since=1,
        deliveries={"succeeded": 1},
        attempts_since=1,
        attempts_ok_since=1,
    )


async def test_a_bin_keeps_its_newest_captures(store: FullStore) -> None:
    made = await store.create_bin(models.Bin("b1", "first", NOW))
    await store.create_bin(models.Bin("b2", "second", NOW + 1))
    ids = []
    for n in range(5):
        stored = await store.capture_request(capture("b1", f'{{"n": {n}}}'.encode()), keep=3)
        ids.append(stored.capture_id)
        await store.capture_request(capture("b2"), keep=3)
    kept = await store.list_captures("b1")
    assert [c.capture_id for c in kept] == ids[:-4:-1]
    assert kept[0] == capture("b1", b'{"n": 4}', capture_id=ids[-1])
    assert await store.get_capture(ids[-1]) == kept[0]
    assert await store.get_capture(ids[0]) is None
    assert [c.body for c in await store.list_captures("b1", search='"N": 3')] == [b'{"n": 3}']
    assert len(await store.list_captures(None, limit=4)) == 4
    got = await store.get_bin("b1")
    assert got == dataclasses.replace(made, captures=3)
    assert [b.bin_id for b in await store.list_bins()] == ["b2", "b1"]
    changed = await store.update_bin("b1", {"reply_status": 503, "reply_delay": 0.5})
    assert changed is not None
    assert (changed.reply_status, changed.reply_delay) == (503, 0.5)
    assert await store.delete_bin("b1")
    assert not await store.delete_bin("b1")
    assert await store.list_captures("b1") == []
    assert await store.get_bin("b1") is None
