"""The growing lists page by cursor: GET /api/v1/deliveries follows its Link rel="next", and
/inspect's triggers, runs and deliveries their "Older" link, with no gap or repeat while new
rows arrive; a malformed cursor is refused (422) with the reason."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from gateway import keys, models
from tests.integration.helpers import finished_run


async def _pull_endpoint(gateway: Any) -> str:
    """Its deliveries wait for a consumer: the dispatcher leaves them as they are."""
    response = await gateway.post("/api/v1/endpoints", json={"mode": "pull"})
    assert response.status == 201
    endpoint_id: str = (await response.json())["endpoint_id"]
    return endpoint_id


async def _enqueue(gateway: Any, endpoint_id: str, count: int, at: float) -> list[str]:
    deliveries = [
        models.NewDelivery(models.new_id(), "", "run.success", b"{}", endpoint_id)
        for _ in range(count)
    ]
    await gateway.app[keys.store_key].enqueue_deliveries(None, deliveries, at)
    return [d.delivery_id for d in deliveries]


async def test_deliveries_page_by_link_with_no_gap_or_repeat_while_more_arrive(
    gateway: Any,
) -> None:
    endpoint_id = await _pull_endpoint(gateway)
    start = time.time() - 1000
    existing: list[str] = []
    for n in range(25):  # ten deliveries a moment: pages split moments too
        existing += await _enqueue(gateway, endpoint_id, 10, start + n)
    seen: list[str] = []
    url: Any = f"/api/v1/deliveries?status=pending&limit=40&endpoint_id={endpoint_id}"
    pages = 0
    while url is not None:
        response = await gateway.get(url)
        assert response.status == 200
        page = await response.json()
        assert all(d["status"] == "pending" for d in page)
        seen += [d["delivery_id"] for d in page]
        await _enqueue(gateway, endpoint_id, 3, time.time())  # newer than any listed
        following = response.links.get("next")
        url = following["url"].relative() if following else None
        pages += 1
    # Every delivery there was when paging began, once; newer arrivals wait for a first page.
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == set(existing)
    assert pages == 7


async def test_a_short_page_is_the_last_and_the_link_keeps_only_the_lists_parameters(
    gateway: Any,
) -> None:
    endpoint_id = await _pull_endpoint(gateway)
    await _enqueue(gateway, endpoint_id, 3, time.time())
    full = await gateway.get(f"/api/v1/deliveries?limit=2&endpoint_id={endpoint_id}&x-other=1")
    link = full.links["next"]["url"].relative()
    assert set(link.query) == {"limit", "endpoint_id", "cursor"}
    last = await gateway.get(link)
    assert len(await last.json()) == 1
    assert "Link" not in last.headers


@pytest.mark.parametrize(
    "cursor",
    ["nonsense!", "bm90IGpzb24", "WzEsMl0", "WyJhIiwiYiJd", "x" * 500, "W251bGwsIngiXQ"],
)
async def test_a_malformed_cursor_is_refused_with_the_reason(gateway: Any, cursor: str) -> None:
    response = await gateway.get("/api/v1/deliveries", params={"cursor": cursor})
    assert response.status == 422
    assert (await response.json())["detail"].startswith("cursor: not a cursor")
    page = await gateway.get("/inspect/deliveries", params={"cursor": cursor})
    assert page.status == 422
    assert "cursor: not a cursor" in await page.text()


async def test_inspect_lists_page_by_their_older_link(gateway: Any) -> None:
    run_ids = []
    for n in range(60):
        response = await gateway.post("/api/v1/webhook/echo", json={"n": n})
        assert response.status == 202
        run_ids.append((await response.json())["run_id"])
    for run_id in run_ids:  # ended before the endpoint exists, so none is routed to it
        await finished_run(gateway, run_id)
    endpoint_id = await _pull_endpoint(gateway)
    await _enqueue(gateway, endpoint_id, 120, time.time() - 100)
    for path, total in (
        ("/inspect/deliveries", 120),
        ("/inspect/runs", 60),
        ("/inspect/triggers", 60),
    ):
        shown: list[str] = []
        url, pages = path, 0
        while url:
            text = await (await gateway.get(url)).text()
            shown += re.findall(r'<td class="when"><a href="([^"]+)"', text)
            older = re.search(r'<a href="([^"]+)" rel="next">Older', text)
            url = older.group(1).replace("&amp;", "&") if older else ""
            pages += 1
        assert len(shown) == len(set(shown)) == total
        assert pages == (total + 49) // 50
