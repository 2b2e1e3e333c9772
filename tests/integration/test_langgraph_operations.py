"""LangGraph operations beyond create-and-wait, through the official SDK: copying a thread,
batches of runs, cancelling with ``rollback``, cancelling in bulk, and a delayed run that starts
no earlier than asked (on a fake clock the test moves)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from gateway import keys
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.testing import FakeClock, Receiver, eventually
from tests.integration.helpers import count_rows, finished_run

FINAL = {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The shipped flows plus ``slow``, which sleeps for ``input["seconds"]``."""
    shipped = make_settings()
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


async def status_of(client: LangGraphClient, thread_id: str, run_id: str) -> str:
    status: str = (await client.runs.get(thread_id, run_id))["status"]
    return status


async def until_status(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> None:
    async def reached() -> bool:
        return await status_of(client, thread_id, run_id) == status

    await eventually(reached)


async def test_a_copied_thread_has_the_state_and_goes_its_own_way(
    client: LangGraphClient,
) -> None:
    original = await client.threads.create(metadata={"user": "ada"})
    assert await client.runs.wait(original["thread_id"], "agent", input={"topic": "ice cream"})
    copy = await client.http.post(f"/threads/{original['thread_id']}/copy", json=None)
    assert copy["thread_id"] != original["thread_id"]
    assert copy["metadata"]["user"] == "ada"
    assert (await client.threads.get_state(copy["thread_id"]))["values"] == FINAL

    await client.threads.update_state(copy["thread_id"], {"joke": "only on the copy"})
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["joke"] == (
        "only on the copy"
    )
    assert (await client.threads.get_state(original["thread_id"]))["values"] == FINAL
    assert await client.runs.list(copy["thread_id"]) == [], "runs stay with their thread"

    with pytest.raises(NotFoundError):
        await client.http.post("/threads/00000000-0000-0000-0000-000000000001/copy", json=None)


async def test_a_batch_starts_each_run_with_its_own_input_and_webhook(
    client: LangGraphClient, gateway: Any, receiver: Receiver, settings: Settings
) -> None:
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "echo", "input": {"n": 1}, "webhook": receiver.url},
            {"assistant_id": "echo", "input": {"n": 2}, "webhook": receiver.url},
            {"assistant_id": "agent", "input": {"topic": "ice cream"}},
        ]
    )
    assert len({run["run_id"] for run in runs}) == 3
    outputs = [(await finished_run(gateway, run["run_id"]))["values"] for run in runs]
    assert outputs == [{"n": 1}, {"n": 2}, FINAL]
    callbacks = await receiver.wait_for(2)
    assert sorted(c.body.count(b'"values":{"n":') for c in callbacks) == [1, 1]

    before = count_rows(settings, "runs")
    for bad in ([], [{"assistant_id": "echo"}, {"assistant_id": "no-such-graph"}], [1], {}):
        refused = await gateway.post("/runs/batch", json=bad)
        assert refused.status in (404, 422), bad
        assert (await refused.json())["detail"]
    assert count_rows(settings, "runs") == before, "a refused batch starts none of its runs"


async def test_cancel_with_rollback_deletes_the_run_and_keeps_the_thread(
    client: LangGraphClient,
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    assert await client.runs.wait(thread_id, "echo", input={"kept": True}) == {"kept": True}
    slow = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    await until_status(client, thread_id, slow["run_id"], "running")

    await client.runs.cancel(thread_id, slow["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, slow["run_id"])
    assert [run["status"] for run in await client.runs.list(thread_id)] == ["success"]
    thread = await client.threads.get(thread_id)
    assert (thread["status"], thread["values"]) == ("idle", {"kept": True})

    [kept] = await client.runs.list(thread_id)
    with pytest.raises(UnprocessableEntityError):
        await client.runs.cancel(thread_id, kept["run_id"], action="undo")  # type: ignore[arg-type]


async def test_bulk_cancel_by_thread_and_by_run_ids(client: LangGraphClient, gateway: Any) -> None:
    busy = (await client.threads.create())["thread_id"]
    running = await client.runs.create(busy, "slow", input={"seconds": 30})
    await until_status(client, busy, running["run_id"], "running")
    queued = await client.runs.create(busy, "echo", input={}, multitask_strategy="enqueue")
    other = (await client.threads.create())["thread_id"]
    spared = await client.runs.create(other, "slow", input={"seconds": 30})
    doomed = await client.runs.create(None, "slow", input={"seconds": 30})

    await client.runs.cancel_many(thread_id=busy)
    assert await status_of(client, busy, running["run_id"]) == "interrupted"
    assert await status_of(client, busy, queued["run_id"]) == "interrupted"
    await until_status(client, other, spared["run_id"], "running")

    await client.runs.cancel_many(run_ids=[doomed["run_id"]], action="rollback")
    assert (await gateway.get(f"/api/v1/runs/{doomed['run_id']}")).status == 404
    assert await status_of(client, other, spared["run_id"]) == "running"

    await client.runs.cancel_many(thread_id=other, run_ids=[spared["run_id"]])
    assert await status_of(client, other, spared["run_id"]) == "interrupted"


async def test_bulk_cancel_by_status(client: LangGraphClient) -> None:
    """``status`` picks the runs to cancel on every thread: pending, running, or all."""
    first, second = [(await client.threads.create())["thread_id"] for _ in range(2)]
    running = [await client.runs.create(t, "slow", input={"seconds": 30}) for t in (first, second)]
    for thread_id, run in zip((first, second), running, strict=True):
        await until_status(client, thread_id, run["run_id"], "running")
    pending = [await client.runs.create(t, "echo", input={}) for t in (first, second)]

    await client.runs.cancel_many(status="pending")
    for thread_id, run in zip((first, second), pending, strict=True):
        assert await status_of(client, thread_id, run["run_id"]) == "interrupted"
    for thread_id, run in zip((first, second), running, strict=True):
        assert await status_of(client, thread_id, run["run_id"]) == "running"

    await client.runs.cancel_many(status="running")
    for thread_id, run in zip((first, second), running, strict=True):
        assert await status_of(client, thread_id, run["run_id"]) == "interrupted"

    with pytest.raises(UnprocessableEntityError):
        await client.runs.cancel_many(status="finished")  # type: ignore[arg-type]
    with pytest.raises(UnprocessableEntityError):
        await client.runs.cancel_many(status="all", thread_id=first)


# a delayed run, on a fake clock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def on_clock(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[TestClient[Any, Any], LangGraphClient]]:
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    lg_client = get_client(url=str(gateway.make_url("")).rstrip("/"), api_key=None)
    try:
        yield gateway, lg_client
    finally:
        await lg_client.aclose()


async def test_a_delayed_run_does_not_start_before_its_time(
    on_clock: tuple[TestClient[Any, Any], LangGraphClient], clock: FakeClock
) -> None:
    gateway, client = on_clock
    worker = gateway.app[keys.worker_key]
    thread_id = (await client.threads.create())["thread_id"]
    start = clock.now()
    run = await client.runs.create(thread_id, "echo", input={"n": 1}, after_seconds=60)
    assert datetime.fromisoformat(run["created_at"]).timestamp() == start + 60, (
        "a delayed run shows when it will start, as the peer does"
    )

    clock.advance(59.9)
    assert await worker.claim() == 0, "not due yet: nothing to claim"
    assert await status_of(client, thread_id, run["run_id"]) == "pending"

    clock.advance(0.1)
    await until_status(client, thread_id, run["run_id"], "success")
    assert await client.runs.join(thread_id, run["run_id"]) == {"n": 1}
    finished = await client.runs.get(thread_id, run["run_id"])
    assert datetime.fromisoformat(finished["run_started_at"]).timestamp() >= start + 60

    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread_id, "echo", input={}, after_seconds=-1)
