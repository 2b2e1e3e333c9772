"""Keyset paging of the newest-first lists, on every backend: following each page's last row
gives every row once, in order, while newer rows keep arriving (base.Position)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gateway import models, paging
from gateway.store import base
from tests.integration.store_contract.common import (
    NOW,
    FullStore,
    new_delivery,
    new_run,
    trigger,
)

T = TypeVar("T")
PAGE = 7
# Times with ties, so that pages also split rows of one moment (ordered by id).
MOMENTS = [NOW - 10, NOW - 10, NOW - 10, NOW - 5, NOW - 5, NOW - 3] * 4


async def page_through(
    listing: Callable[[base.Position | None], Awaitable[Sequence[T]]],
    key: Callable[[T], base.Position],
    arrive: Callable[[], Awaitable[object]],
) -> list[T]:
    """Every page in turn, a new row arriving before each."""
    seen: list[T] = []
    after = None
    while True:
        page = await listing(after)
        seen.extend(page)
        after = paging.next_position(page, PAGE, key)
        if after is None:
            return seen
        await arrive()


def newest_first(items: Sequence[T], key: Callable[[T], base.Position]) -> list[T]:
    return sorted(items, key=lambda item: (key(item).at, key(item).id), reverse=True)


async def test_deliveries_page_with_no_gap_or_repeat_while_more_arrive(store: FullStore) -> None:
    for moment in MOMENTS:
        await store.enqueue_deliveries(None, [new_delivery()], moment)
    existing = await store.list_deliveries(base.DeliverySelection(), limit=1000)

    async def listing(after: base.Position | None) -> list[models.Delivery]:
        return await store.list_deliveries(base.DeliverySelection(), PAGE, after)

    async def arrive() -> None:
        await store.enqueue_deliveries(None, [new_delivery()], NOW)

    seen = await page_through(listing, paging.delivery_position, arrive)
    assert [d.delivery_id for d in seen] == [d.delivery_id for d in existing]
    assert existing == newest_first(existing, paging.delivery_position)
    assert len(existing) == len(MOMENTS)


async def test_a_filtered_list_pages_within_its_filter(store: FullStore) -> None:
    for n, moment in enumerate(MOMENTS):
        await store.enqueue_deliveries(None, [new_delivery(url=f"http://h/{n % 2}")], moment)
    [claimed, *_] = await store.claim_deliveries(5, NOW, 30, base.ClaimPolicy(100, 5))
    pending = base.DeliverySelection(statuses=(models.DeliveryStatus.PENDING,))
    outcome = base.AttemptOutcome(
        models.AttemptResult(NOW, 1.0, 200, {}, b"", None), models.DeliveryStatus.SUCCEEDED
    )
    await store.record_attempt(claimed, outcome)
    expected = await store.list_deliveries(pending, 1000)

    async def listing(after: base.Position | None) -> list[models.Delivery]:
        return await store.list_deliveries(pending, PAGE, after)

    async def arrive() -> None:
        await store.enqueue_deliveries(None, [new_delivery()], NOW)

    seen = await page_through(listing, paging.delivery_position, arrive)
    assert [d.delivery_id for d in seen] == [d.delivery_id for d in expected]
    assert len(seen) == len(MOMENTS) - 1


async def test_triggers_and_runs_page_with_no_gap_or_repeat(store: FullStore) -> None:
    for moment in MOMENTS:
        await store.create_trigger_and_run(trigger(received_at=moment), new_run(), moment)
    triggers = await store.list_triggers(base.TriggerSelection(), 1000)

    async def arrive() -> None:
        await store.create_trigger_and_run(trigger(received_at=NOW), new_run(), NOW)

    async def trigger_page(after: base.Position | None) -> list[models.Trigger]:
        return await store.list_triggers(base.TriggerSelection(flow_id="echo"), PAGE, after)

    async def run_page(after: base.Position | None) -> list[models.Run]:
        return await store.list_runs(base.RunSelection(flow_id="echo"), PAGE, after)

    seen_triggers = await page_through(trigger_page, paging.trigger_position, arrive)
    assert [t.trigger_id for t in seen_triggers] == [t.trigger_id for t in triggers]
    assert triggers == newest_first(triggers, paging.trigger_position)
    runs = await store.list_runs(base.RunSelection(), 1000)
    seen_runs = await page_through(run_page, paging.run_position, arrive)
    assert [r.run_id for r in seen_runs] == [r.run_id for r in runs]
    assert runs == newest_first(runs, paging.run_position)
    assert len(triggers) == len(MOMENTS)
