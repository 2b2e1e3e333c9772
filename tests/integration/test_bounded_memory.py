"""Memory returns: streams that connect and vanish leave no subscriber behind."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway import keys
from gateway.settings import FlowSettings, Settings
from gateway.testing import eventually

ABANDONED = 1000


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """The shipped flows plus ``slow``, which sleeps for ``input["seconds"]``."""
    shipped: Settings = make_settings()
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow", timeout=120)
    return shipped.replace(flows={**shipped.flows, "slow": slow})


async def test_abandoned_run_streams_leave_no_subscriber(gateway: Any) -> None:
    thread = await (await gateway.post("/threads", json={})).json()
    created = await gateway.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "slow", "input": {"seconds": 60}},
    )
    run = await created.json()
    url = gateway.make_url(f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream")
    hub = gateway.app[keys.runs_key].events
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        streams = []
        for start in range(0, ABANDONED, 100):
            opened = [session.get(url) for _ in range(start, start + 100)]
            streams += await asyncio.gather(*opened)
        assert {response.status for response in streams} == {200}

        async def all_following() -> bool:
            return hub.readers == ABANDONED

        await eventually(all_following, timeout=30)
        for response in streams:
            response.close()  # the client vanishes without a word

    async def released() -> bool:
        return hub.readers == 0

    await eventually(released, timeout=30)  # each stream notices at its next keepalive
