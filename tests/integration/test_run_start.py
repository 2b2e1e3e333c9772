"""How runs start: at once unless delayed, each executed once, and a worker that has been busy
takes later runs all the same. The app runs on a fake clock the tests never move, so whatever
starts here starts without any time passing."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.testing import FakeClock
from tests.integration.helpers import finished_run

STARTED: collections.Counter[str] = collections.Counter()


async def counted(value: Any) -> Any:
    """Counts its executions under its input's ``key`` (or Langflow's ``input_value``), then
    takes a third of a second: ample time for any other worker to take the run as well."""
    STARTED[value.get("key") or value["input_value"]] += 1
    await asyncio.sleep(0.3)
    return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], clock: FakeClock
) -> TestClient[Any, Any]:
    shipped = make_settings(run_concurrency=2)
    flows = {**shipped.flows, "counted": FlowSettings(target=f"{__name__}:counted")}
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(shipped.replace(flows=flows), clock=clock)
    )
    return client


async def test_runs_start_at_once_on_every_api(gateway: Any, clock: FakeClock) -> None:
    start = clock.now()
    async with asyncio.timeout(10):
        langflow = await gateway.post("/api/v1/run/echo", json={"input_value": "hi"})
        assert langflow.status == 200, await langflow.text()
        created = await gateway.post(
            "/runs", json={"assistant_id": "echo", "input": {"n": 1}, "metadata": {"team": "a"}}
        )
        run = await created.json()
        assert run["metadata"]["team"] == "a"
        joined = await gateway.get(f"/runs/{run['run_id']}/join")
        assert await joined.json() == {"n": 1}
        waited = await gateway.post("/runs/wait", json={"assistant_id": "echo", "input": {}})
        assert await waited.json() == {}
    assert clock.now() == start


async def test_a_run_is_executed_once_on_every_api(gateway: Any) -> None:
    keys = [str(uuid.uuid4()) for _ in range(3)]
    async with asyncio.timeout(10):
        langflow = await gateway.post("/api/v1/run/counted", json={"input_value": keys[0]})
        assert langflow.status == 200
        trigger = await gateway.post("/api/v1/webhook/counted", json={"key": keys[1]})
        run_id = (await trigger.json())["run_id"]
        await finished_run(gateway, run_id)
        body = {"assistant_id": "counted", "input": {"key": keys[2]}}
        assert (await (await gateway.post("/runs/wait", json=body)).json())["key"] == keys[2]
    assert [STARTED[key] for key in keys] == [1, 1, 1], "no second worker took a run as it ran"


async def test_more_runs_than_the_worker_holds_at_once_all_run(gateway: Any) -> None:
    """Two at a time (run_concurrency=2): the places the first ones held are given back."""
    async with asyncio.timeout(10):
        for n in range(5):
            response = await gateway.post("/api/v1/run/echo", json={"input_value": str(n)})
            assert response.status == 200
            trigger = await gateway.post("/api/v1/webhook/echo", json={"n": n})
            await finished_run(gateway, (await trigger.json())["run_id"])
