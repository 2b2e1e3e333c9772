"""A run executing in one gateway process, reached through another on the same PostgreSQL
database: cancel, interrupt and rollback end it within a second, and a stream or a join sees
every event live.

Both processes poll only every 30 s here, so whatever happens within a second or two happened
because one process heard the other's commit through the change feed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.testing import eventually

SLOW_POLL = 30.0
Client = TestClient[web.Request, web.Application]
TEST_FLOWS = {
    name: FlowSettings(target=f"tests.integration.flows_for_tests:{name}")
    for name in ("slow", "ticks")
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], postgres_url: str) -> Settings:
    shipped = make_settings(database_url=postgres_url, poll_interval=SLOW_POLL)
    return shipped.replace(flows={**shipped.flows, **TEST_FLOWS})


@pytest.fixture
async def gateways(settings: Settings, aiohttp_client: Callable[..., Any]) -> list[Client]:
    """Two gateway processes' worth of app; their database is dropped after they stop."""
    return [await aiohttp_client(create_app(settings)) for _ in range(2)]


async def started_in_one(gateways: list[Client], flow_id: str, value: Any) -> tuple[str, str, int]:
    """Start a thread run through the first gateway; ``(thread_id, run_id, index)`` of the
    gateway whose worker runs it."""
    first = gateways[0]
    thread_id = (await (await first.post("/threads", json={})).json())["thread_id"]
    response = await first.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": flow_id, "input": value}
    )
    assert response.status == 200, await response.text()
    run_id = (await response.json())["run_id"]

    async def running_in() -> int | None:
        for index, gateway in enumerate(gateways):
            if run_id in gateway.app[keys.worker_key].held():
                return index + 1
        return None

    return thread_id, run_id, await eventually(running_in) - 1


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_a_run_in_one_process_is_cancelled_through_the_other(
    gateways: list[Client], action: str
) -> None:
    thread_id, run_id, runner = await started_in_one(gateways, "slow", {"seconds": 60})
    other = gateways[1 - runner]
    started = time.monotonic()
    response = await other.post(
        f"/threads/{thread_id}/runs/{run_id}/cancel", params={"action": action, "wait": "1"}
    )
    took = time.monotonic() - started
    assert response.status == 200, await response.text()
    assert took < 1.0, f"the cancel took {took:.2f} s to reach the other process"
    runner_view = await gateways[runner].get(f"/api/v1/runs/{run_id}")
    if action == "rollback":
        assert runner_view.status == 404, "rolled back: the run is gone"
    else:
        assert (await runner_view.json())["status"] == "interrupted"
    worker = gateways[runner].app[keys.worker_key]

    async def let_go() -> bool:  # the interrupted flow unwinds after the answer
        return run_id not in worker.held()

    await eventually(let_go, timeout=5.0)


async def test_cancelling_many_runs_through_one_process_reaches_both(
    gateways: list[Client],
) -> None:
    runs = [await started_in_one(gateways, "slow", {"seconds": 60}) for _ in range(4)]
    started = time.monotonic()
    response = await gateways[0].post("/runs/cancel", json={"run_ids": [r for _, r, _ in runs]})
    assert response.status == 204, await response.text()
    assert time.monotonic() - started < 2.0
    for _, run_id, _ in runs:
        view = await (await gateways[1].get(f"/api/v1/runs/{run_id}")).json()
        assert view["status"] == "interrupted"


async def test_a_stream_through_one_process_sees_every_event_of_a_run_in_the_other_live(
    gateways: list[Client],
) -> None:
    count, every = 6, 0.3
    thread_id, run_id, runner = await started_in_one(
        gateways, "ticks", {"count": count, "every": every}
    )
    other = gateways[1 - runner]
    arrivals: list[tuple[float, int]] = []
    async with other.get(
        f"/threads/{thread_id}/runs/{run_id}/stream", params={"stream_mode": "custom"}
    ) as response:
        assert response.status == 200
        async for line in response.content:
            if line.startswith(b"data: ") and b'"tick"' in line:
                arrivals.append((time.monotonic(), json.loads(line[6:])["tick"]))
    assert [tick for _, tick in arrivals] == list(range(count)), "every event, once, in order"
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread > (count - 1) * every / 2, f"events came in a burst ({spread:.2f} s), not live"


async def test_a_join_through_one_process_ends_with_the_run_in_the_other(
    gateways: list[Client],
) -> None:
    thread_id, run_id, runner = await started_in_one(gateways, "ticks", {"count": 3, "every": 0.3})
    joined = await asyncio.wait_for(
        gateways[1 - runner].get(f"/threads/{thread_id}/runs/{run_id}/join"), SLOW_POLL / 3
    )
    assert await joined.json() == {"count": 3, "every": 0.3}
