"""Interrupting runs around the moment they are claimed: every interrupted run ends, and the
next run on its thread starts.

The interleavings are driven, not waited for: the worker's background loop is idle (a poll
interval of an hour), so only the wake-ups under test and the claims the test makes move runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from langgraph_sdk import get_client

from gateway import keys, models
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.store.sqlite import SQLiteStore, path_from_url
from gateway.testing import FakeClock, eventually

IDLE_POLL = 3600.0


class ClaimWhileReading(SQLiteStore):
    """The real store; ``on_read`` runs once, right after the next ``request_cancel`` has
    recorded the request and read the run's row, so the test can make the worker claim a run
    at exactly that moment."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.on_read: Callable[[], Awaitable[None]] | None = None

    async def request_cancel(self, run_id: str, reason: str, now: float) -> models.Run | None:
        run = await super().request_cancel(run_id, reason, now)
        hook, self.on_read = self.on_read, None
        if hook is not None:
            await hook()
        return run


@pytest.fixture
def gateway_database_url(tmp_path: Path) -> str:
    """SQLite on every run: the race is staged inside a SQLite store (across processes on
    PostgreSQL, cancelling is tested in test_cancel_across_processes.py)."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    shipped = make_settings(poll_interval=IDLE_POLL)
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


async def _json(client: TestClient[Any, Any], method: str, path: str, **body: Any) -> Any:
    response = await client.request(method, path, json=body or None)
    assert response.status < 300, (path, response.status, await response.text())
    return await response.json()


async def _status(client: TestClient[Any, Any], thread_id: str, run_id: str) -> str:
    run = await _json(client, "GET", f"/threads/{thread_id}/runs/{run_id}")
    status: str = run["status"]
    return status


async def test_cancel_of_a_run_claimed_while_it_is_read_still_ends_it(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], settings: Settings
) -> None:
    """The worker claims the run between the cancel reading it and acting on it: the run
    still ends interrupted (not left running under its lease), and the thread moves on."""
    clock = FakeClock()
    store = ClaimWhileReading(path_from_url(settings.database_url))
    client = await aiohttp_client(create_app(settings, store=store, clock=clock))
    worker = client.app[keys.worker_key]
    thread_id = (await _json(client, "POST", "/threads"))["thread_id"]
    # Delayed, so the worker leaves it alone until the test moves the clock and claims.
    run = await _json(
        client,
        "POST",
        f"/threads/{thread_id}/runs",
        assistant_id="echo",
        input={"n": 1},
        after_seconds=10,
    )

    async def claim_now() -> None:
        clock.advance(10)
        assert await worker.claim() == 1

    store.on_read = claim_now
    ended = await worker.cancel(run["run_id"], "interrupted")

    assert ended is not None
    assert ended.status is models.RunStatus.INTERRUPTED, "left running under its lease"
    after = await _json(
        client, "POST", f"/threads/{thread_id}/runs", assistant_id="echo", input={"n": 2}
    )

    async def next_run_done() -> bool:
        return await _status(client, thread_id, after["run_id"]) == "success"

    await eventually(next_run_done, timeout=10)


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupting_never_starts_the_queued_runs_it_interrupts(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    settings: Settings,
    strategy: str,
) -> None:
    """Queued runs are ended while the running one still holds the thread, so none is
    claimed in between; the interrupting run then starts without waiting for a poll."""
    client = await aiohttp_client(create_app(settings))
    lg = get_client(url=str(client.make_url("")).rstrip("/"), api_key=None)
    try:
        for _ in range(10):
            thread_id = (await lg.threads.create())["thread_id"]
            slow = await lg.runs.create(thread_id, "slow", input={"seconds": 30})

            async def slow_running(run_id: str = slow["run_id"], tid: str = thread_id) -> bool:
                return await _status(client, tid, run_id) == "running"

            await eventually(slow_running)
            queued = await lg.runs.create(
                thread_id, "echo", input={"n": 1}, multitask_strategy="enqueue"
            )
            interrupting = await lg.runs.create(
                thread_id, "echo", input={"n": 2}, multitask_strategy=strategy
            )
            assert await lg.runs.join(thread_id, interrupting["run_id"]) == {"n": 2}
            if strategy == "interrupt":
                got = await lg.runs.get(thread_id, queued["run_id"])
                assert got["status"] == "interrupted"
                assert got["run_started_at"] is None, "the queued run was started"
            else:
                remaining = {r["run_id"] for r in await lg.runs.list(thread_id)}
                assert remaining == {interrupting["run_id"]}
    finally:
        await lg.aclose()
