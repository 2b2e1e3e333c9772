"""Two gateways on one PostgreSQL database wake each other through the change feed.

Both poll only every 30 s here, so anything that happens within a few seconds happened
because a commit in one process was heard in the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from langgraph_sdk import get_client

from gateway import keys, models
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.store import base
from gateway.store.postgres import PostgresStore
from gateway.testing import Receiver, eventually

SLOW_POLL = 30.0
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], postgres_url: str) -> Settings:
    shipped = make_settings(database_url=postgres_url, poll_interval=SLOW_POLL)
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


@pytest.fixture
async def gateways(settings: Settings, aiohttp_client: Callable[..., Any]) -> list[Client]:
    """Two gateway processes' worth of app (two stores, two workers, two dispatchers). Their
    database is set up first, so it is dropped only after they stopped."""
    return [await aiohttp_client(create_app(settings)) for _ in range(2)]


@pytest.fixture
async def outside(postgres_url: str, gateways: list[Client]) -> AsyncIterator[PostgresStore]:
    """A third writer on the same database, as the CLI or another host would be."""
    store = PostgresStore(postgres_url, max_size=1)
    await store.open()
    yield store
    await store.close()


async def test_a_run_queued_elsewhere_starts_at_once(
    gateways: list[Client], outside: PostgresStore
) -> None:
    await asyncio.sleep(0.2)  # both workers have made their first claim and sleep
    run = base.NewRun(models.new_id(), "echo", {"n": 1}, {"webhook": None}, {})
    started = time.monotonic()
    await outside.create_run(run, time.time())

    async def ended() -> bool:
        stored = await outside.get_run(run.run_id)
        return stored is not None and stored.status is models.RunStatus.SUCCESS

    await eventually(ended, timeout=SLOW_POLL / 3)
    assert time.monotonic() - started < 5


async def test_a_retry_requested_elsewhere_is_sent_at_once(
    gateways: list[Client], outside: PostgresStore, receiver: Receiver
) -> None:
    await asyncio.sleep(0.2)
    delivery = models.NewDelivery(models.new_id(), receiver.url, "run.success", b'{"n": 1}')
    await outside.enqueue_deliveries(None, [delivery], time.time() + 3600)
    started = time.monotonic()
    await outside.retry_delivery(delivery.delivery_id, time.time())

    async def sent() -> bool:
        return bool(receiver.received)

    await eventually(sent, timeout=SLOW_POLL / 3)
    assert time.monotonic() - started < 5
    assert receiver.received[0].headers["webhook-id"] == delivery.delivery_id


async def test_a_join_in_one_process_ends_with_a_run_in_the_other(
    gateways: list[Client],
) -> None:
    first, second = (get_client(url=str(g.make_url("")).rstrip("/")) for g in gateways)
    try:
        thread = await first.threads.create()
        run = await first.runs.create(thread["thread_id"], "slow", input={"seconds": 1})
        started = time.monotonic()
        joined = await asyncio.wait_for(
            second.runs.join(thread["thread_id"], run["run_id"]), SLOW_POLL / 3
        )
        assert joined == {"seconds": 1}
        assert time.monotonic() - started < 5
    finally:
        await first.aclose()
        await second.aclose()


async def test_inspect_pages_hear_the_other_process(gateways: list[Client]) -> None:
    notifier = gateways[1].app[keys.inspect_notifier_key]
    async with notifier.subscribe() as heard:
        response = await gateways[0].post("/api/v1/webhook/echo", json={"n": 1})
        run_id = (await response.json())["run_id"]
        seen: list[dict[str, Any]] = []
        while not any(c and c.get("kind") == "run_end" for c in seen):
            seen.append(await asyncio.wait_for(heard.get(), 5))  # type: ignore[arg-type]
    assert {"kind": "run", "run_id": run_id} in seen
    assert {"kind": "run_end", "run_id": run_id} in seen
    assert any(c["kind"] == "trigger" for c in seen)
