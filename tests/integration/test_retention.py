"""Retention in the running app: the background pruner deletes what expired by the app's
clock, keeps what is still to be delivered, and says so in ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.models import RunStatus
from gateway.pruner import Pruner
from gateway.settings import Settings
from gateway.store import base
from gateway.store.retention import Cutoffs, Pruned
from gateway.store.sqlite import SQLiteStore
from gateway.testing import FakeClock, Receiver, eventually
from tests.integration.helpers import count_rows, finished_run
from tests.integration.store_contract.common import NOW, new_run, trigger
from tests.integration.store_contract.test_retention import LATER, RETENTION
from tests.integration.test_metrics import scrape

SUCCESS = RunStatus.SUCCESS

MINUTE_IN_DAYS = 60 / 86400


async def test_the_pruner_deletes_expired_runs_and_keeps_pending_deliveries(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
) -> None:
    clock = FakeClock(time.time())
    settings = make_settings(
        retention_days=10 * MINUTE_IN_DAYS,
        event_retention_days=10 * MINUTE_IN_DAYS,
        dedup_window_seconds=60.0,
        prune_interval=60.0,
        prune_batch=2,
    )
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    hook = {"url": receiver.url, "flow_ids": ["fail"]}
    hook = await (await gateway.post("/api/v1/endpoints", json=hook)).json()
    await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/pause")
    kept = (await (await gateway.post("/api/v1/webhook/fail", json={})).json())["run_id"]
    await finished_run(gateway, kept)
    expired = []
    for n in range(3):
        answer = await gateway.post("/api/v1/webhook/echo", json={"n": n})
        expired.append((await answer.json())["run_id"])
    for run_id in expired:
        await finished_run(gateway, run_id)
    health = await (await gateway.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["retention"]["pruned"]["runs"] == 0, "nothing had expired at start-up"

    clock.advance(11 * 60)

    async def pruned() -> dict[str, Any] | None:
        body: dict[str, Any] = await (await gateway.get("/healthz")).json()
        return body if body["retention"]["pruned"]["runs"] else None

    health = await eventually(pruned)
    assert health["retention"]["pruned"]["runs"] == 3
    assert health["retention"]["pruned_at"] is not None
    for run_id in expired:
        assert (await gateway.get(f"/api/v1/runs/{run_id}")).status == 404
    assert (await gateway.get(f"/api/v1/runs/{kept}")).status == 200, "its delivery is pending"
    [pending] = await (await gateway.get(f"/api/v1/deliveries?run_id={kept}")).json()
    assert pending["status"] == "pending"
    assert count_rows(settings, "triggers") == 1

    samples = await scrape(gateway)
    assert samples[("hookgate_pruned_rows_total", (("kind", "runs"),))] == 3
    assert samples[("hookgate_pruned_rows_total", (("kind", "triggers"),))] == 3
    assert samples[("hookgate_pruned_rows_total", (("kind", "events"),))] > 0
    assert samples[("hookgate_last_prune_timestamp_seconds", ())] >= clock.now() - 60


async def test_a_thread_is_deleted_when_its_ttl_ends(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock(time.time())
    settings = make_settings(prune_interval=30.0)
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    short = await (await gateway.post("/threads", json={"ttl": 1})).json()
    ten_minutes = {"ttl": {"ttl": 10, "strategy": "delete"}}
    long = await (await gateway.post("/threads", json=ten_minutes)).json()
    forever = await (await gateway.post("/threads", json={})).json()
    clock.advance(2 * 60)

    async def deleted() -> bool:
        return (await gateway.get(f"/threads/{short['thread_id']}")).status == 404

    await eventually(deleted)
    assert (await gateway.get(f"/threads/{long['thread_id']}")).status == 200
    assert (await gateway.get(f"/threads/{forever['thread_id']}")).status == 200
    health = await (await gateway.get("/healthz")).json()
    assert health["retention"]["pruned"]["threads"] == 1


async def test_the_sqlite_file_shrinks_after_a_prune(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    await store.open()
    body = os.urandom(20_000)
    for _ in range(500):
        made = dataclasses.replace(trigger(received_at=NOW), body=body)
        run, _ = await store.create_trigger_and_run(made, new_run(), NOW)
        await store.finish_run(base.RunEnding(run.run_id, SUCCESS, None, None, []), NOW)
    await store.close()  # the last connection out checkpoints the WAL into the file
    full = path.stat().st_size
    assert full > 10_000_000

    await store.open()
    pruned = await store.prune(RETENTION.cutoffs(LATER), batch=1000)
    assert (pruned.runs, pruned.triggers) == (500, 500)
    await store.close()
    assert path.stat().st_size < full / 10, "the freed pages went back to the file system"


async def test_a_file_made_without_incremental_vacuum_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,), "incremental"


class PruneHeldOpen(SQLiteStore):
    """The real store; its first prune waits for ``release``, so the test can move the clock
    while a prune is under way."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = asyncio.Event()
        self.started: list[float] = []

    async def prune(self, cutoffs: Cutoffs, batch: int) -> Pruned:
        self.started.append(cutoffs.now)
        if len(self.started) == 1:
            await self.release.wait()
        return await super().prune(cutoffs, batch)


async def test_what_expires_while_a_prune_runs_goes_one_interval_after_it_started(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOW)
    store = PruneHeldOpen(tmp_path / "gateway.db")
    await store.open()
    pruner = Pruner(store, clock, RETENTION, interval=30.0, batch=100, check_every=0.01)
    task = asyncio.create_task(pruner.run_forever())

    async def prunes(count: int) -> bool:
        return len(store.started) >= count

    try:
        await eventually(lambda: prunes(1))
        clock.advance(120)  # the first prune took its cutoffs before this
        store.release.set()
        await eventually(lambda: prunes(2))
        assert store.started == [NOW, NOW + 120]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
