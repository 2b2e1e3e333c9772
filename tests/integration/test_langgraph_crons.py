"""LangGraph crons through the SDK: create, search, count, update, delete; firings are normal
runs whose webhooks arrive signed; a firing is claimed once, across schedulers and restarts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
import standardwebhooks
from aiohttp.test_utils import TestClient
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, NotFoundError, UnprocessableEntityError

from gateway import keys, signing
from gateway.app import create_app
from gateway.runs import threads as lg
from gateway.runs.crons import CronScheduler
from gateway.settings import Settings
from gateway.testing import FakeClock, Receiver, eventually
from tests.integration.helpers import count_rows

SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="
EVERY_SECOND = "* * * * * *"


@pytest.fixture
def clock() -> FakeClock:
    """Crons fire when the test moves this clock; it starts at the real time, so receivers'
    timestamp tolerance accepts the webhooks it signs."""
    return FakeClock(time.time())


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    return client


@pytest.fixture
async def client(gateway: Any) -> AsyncIterator[LangGraphClient]:
    lg_client = get_client(url=str(gateway.make_url("")).rstrip("/"), api_key=None)
    try:
        yield lg_client
    finally:
        await lg_client.aclose()


async def test_cron_fires_runs_with_signed_webhooks(
    client: LangGraphClient, receiver: Receiver, clock: FakeClock
) -> None:
    cron = await client.crons.create(
        "echo", schedule=EVERY_SECOND, input={"tick": True}, webhook=receiver.url
    )
    assert cron["schedule"] == EVERY_SECOND
    assert cron["on_run_completed"] == "delete"
    clock.advance(1)
    await receiver.wait_for(1)
    clock.advance(1)
    received = await receiver.wait_for(2)
    verifier = standardwebhooks.Webhook(signing.callback_secret(SIGNING_SECRET, receiver.url))
    payloads = [verifier.verify(r.body, r.headers) for r in received[:2]]
    assert [p["values"] for p in payloads] == [{"tick": True}, {"tick": True}]
    assert len({p["run_id"] for p in payloads}) == 2
    assert all(p["metadata"]["cron_id"] == cron["cron_id"] for p in payloads)
    await client.crons.delete(cron["cron_id"])


async def test_a_firing_happens_once_and_the_next_one_interval_later(
    client: LangGraphClient, gateway: Any, settings: Settings, receiver: Receiver, clock: FakeClock
) -> None:
    """The scheduler runs on its own; a second one, ticked by the test, stands for every later
    tick of it: however often it looks, a firing is claimed once."""
    cron = await client.crons.create("echo", schedule="* * * * *", webhook=receiver.url)
    due = datetime.fromisoformat(cron["next_run_date"]).timestamp()
    looker = CronScheduler(
        gateway.app[keys.langgraph_threads_key],
        lg.thread_store(gateway.app[keys.store_key]),
        clock,
        poll_interval=1,
    )

    async def runs(count: int) -> bool:
        return count_rows(settings, "runs") == count

    clock.advance(due - 1 - clock.now())
    assert await looker.tick() == 0, "not due yet"
    assert count_rows(settings, "runs") == 0

    clock.advance(1)
    await receiver.wait_for(1)
    clock.advance(59)
    assert await looker.tick() == 0, "this minute's firing is claimed already"
    assert await runs(1)

    clock.advance(1)
    await receiver.wait_for(2)
    assert await looker.tick() == 0
    await eventually(lambda: runs(2))
    moved = await client.crons.search()
    assert datetime.fromisoformat(moved[0]["next_run_date"]).timestamp() == due + 120
    await client.crons.delete(cron["cron_id"])


async def test_thread_cron_runs_on_its_thread(client: LangGraphClient, clock: FakeClock) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    cron = await client.crons.create_for_thread(
        thread_id, "agent", schedule=EVERY_SECOND, input={"topic": "ice cream"}
    )
    assert cron["thread_id"] == thread_id
    clock.advance(1)

    async def fired() -> list[Any]:
        return [r for r in await client.runs.list(thread_id) if r["status"] == "success"]

    runs = await eventually(fired)
    assert runs[0]["metadata"]["cron_id"] == cron["cron_id"]
    assert (await client.threads.get_state(thread_id))["values"]["joke"].startswith("This is")
    await client.crons.delete(cron["cron_id"])


async def test_cron_search_count_update_delete_and_bad_input(
    client: LangGraphClient, settings: Settings
) -> None:
    cron = await client.crons.create("echo", schedule="0 0 1 1 *", input={}, metadata={"team": "a"})
    found = await client.crons.search(assistant_id="echo")
    assert [c["cron_id"] for c in found] == [cron["cron_id"]]
    assert await client.crons.count(metadata={"team": "a"}) == 1
    updated = await client.crons.update(cron["cron_id"], schedule="0 0 2 1 *", enabled=False)
    assert updated["schedule"] == "0 0 2 1 *"
    assert updated["enabled"] is False
    assert await client.crons.search(enabled=True) == []
    with pytest.raises(BadRequestError):
        await client.http.patch(f"/runs/crons/{cron['cron_id']}", json={})

    before = count_rows(settings, "crons")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.create("echo", schedule="every tuesday", input={})
    with pytest.raises(UnprocessableEntityError):
        await client.crons.create(
            "echo", schedule=EVERY_SECOND, webhook="http://169.254.169.254/latest"
        )
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(
            "00000000-0000-0000-0000-000000000001", "echo", schedule=EVERY_SECOND
        )
    assert count_rows(settings, "crons") == before

    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])


async def test_a_firing_is_claimed_once_by_competing_schedulers(
    gateway: Any, client: LangGraphClient, settings: Settings
) -> None:
    cron = await client.crons.create("echo", schedule="0 0 1 1 *", input={"once": 1})
    store = lg.thread_store(gateway.app[keys.store_key])
    threads = gateway.app[keys.langgraph_threads_key]
    clock = gateway.app[keys.clock_key]
    stored = await store.get_cron(cron["cron_id"])
    assert stored is not None
    # Both fire the firing the store holds (next year's), as a scheduler does once it falls
    # due; the store never shows it due, so the app's own scheduler stays out of this race.
    one = CronScheduler(threads, store, clock, poll_interval=1)
    two = CronScheduler(threads, store, clock, poll_interval=1)
    runs_before = count_rows(settings, "runs")
    fired = [await one.fire(stored, clock.now()), await two.fire(stored, clock.now())]
    assert sorted(fired) == [False, True]
    assert count_rows(settings, "runs") == runs_before + 1
    moved = await store.get_cron(cron["cron_id"])
    assert moved is not None
    assert moved.next_run_date > stored.next_run_date


async def test_a_firing_missed_while_down_fires_once_after_restart(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    first: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    response = await first.post(
        "/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *", "input": {"x": 1}}
    )
    cron = await response.json()
    store = lg.thread_store(first.app[keys.store_key])
    clock = first.app[keys.clock_key]
    await store.update_cron(cron["cron_id"], {"enabled": False}, clock.now())
    await first.close()  # the gateway is down when the firing falls due

    second: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    store = lg.thread_store(second.app[keys.store_key])
    clock = second.app[keys.clock_key]
    await store.update_cron(
        cron["cron_id"], {"enabled": True, "next_run_date": clock.now() - 3600}, clock.now()
    )

    async def fired() -> int:
        return count_rows(settings, "runs")

    assert await eventually(fired) == 1
    after = await store.get_cron(cron["cron_id"])
    assert after is not None
    assert after.next_run_date > clock.now()
    assert count_rows(settings, "runs") == 1
    await second.close()
