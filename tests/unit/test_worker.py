"""The run worker's claim loop on a fake clock: how much it claims, how runs end, what it
hands back. A real SQLite store; flows are plain functions, some held on an event so that a
test can look at the worker while they run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway import models
from gateway.flows import Flow, RunContext, flow_from_callable
from gateway.metrics import Metrics
from gateway.runs.events import EventHub
from gateway.runs.service import RunService
from gateway.runs.worker import RunWorker
from gateway.store import base
from gateway.store.sqlite import SQLiteStore
from gateway.testing import FakeClock

LEASE = 30.0


class Gate:
    """A flow that waits until the test opens the gate; ``started`` counts the runs inside."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []
        self.arrived = asyncio.Event()

    async def run(self, value: Any, context: RunContext) -> Any:
        self.started.append(context.run_id)
        self.arrived.set()
        await self.open.wait()
        return {"echo": value}


async def broken(value: Any) -> Any:
    raise RuntimeError("the flow broke")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "store.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def flows(gate: Gate) -> dict[str, Flow]:
    return {
        "gated": flow_from_callable("gated", gate.run, timeout=600),
        "broken": flow_from_callable("broken", broken, timeout=600),
    }


@pytest.fixture
async def worker(
    store: SQLiteStore, clock: FakeClock, flows: dict[str, Flow]
) -> AsyncIterator[RunWorker]:
    service = RunService(store, flows, clock, Metrics(), EventHub(store, clock))
    made = RunWorker(
        service, store, clock, concurrency=2, lease_seconds=LEASE, poll_interval=3600.0
    )
    service.handoff = made
    yield made
    await made.stop()


async def pending(store: SQLiteStore, clock: FakeClock, flow_id: str = "gated") -> str:
    run = await store.create_run(
        base.NewRun(models.new_id(), flow_id, {"n": 1}, {"webhook": None}, {}), clock.now()
    )
    return run.run_id


async def status(store: SQLiteStore, run_id: str) -> models.RunStatus:
    run = await store.get_run(run_id)
    assert run is not None
    return run.status


async def test_a_claim_takes_no_more_than_the_free_concurrency(
    store: SQLiteStore, clock: FakeClock, gate: Gate, worker: RunWorker
) -> None:
    runs = [await pending(store, clock) for _ in range(3)]

    assert await worker.claim() == 2
    assert sorted(worker.held()) == sorted(runs[:2])
    assert await worker.claim() == 0  # full
    assert await status(store, runs[2]) is models.RunStatus.PENDING

    gate.open.set()
    await worker.drain()
    assert worker.held() == []
    for run_id in runs:
        run = await store.get_run(run_id)
        assert run is not None
        assert (run.status, run.output) == (models.RunStatus.SUCCESS, {"echo": {"n": 1}})


async def test_a_reserved_slot_is_not_claimed(
    store: SQLiteStore, clock: FakeClock, worker: RunWorker
) -> None:
    """A slot held for a run being stored already claimed (the ingest handoff) is not free."""
    for _ in range(2):
        await pending(store, clock)

    assert worker.reserve()
    assert await worker.claim() == 1
    assert not worker.reserve()  # one running, one reserved: full
    worker.release()
    assert worker.reserve()


async def test_a_failing_flow_and_a_missing_flow_end_as_errors(
    store: SQLiteStore, clock: FakeClock, worker: RunWorker
) -> None:
    failing = await pending(store, clock, "broken")
    unknown = await pending(store, clock, "no-such-flow")

    await worker.drain()

    failed = await store.get_run(failing)
    missing = await store.get_run(unknown)
    assert failed is not None
    assert missing is not None
    assert failed.status is missing.status is models.RunStatus.ERROR
    assert failed.error == {"error": "RuntimeError", "message": "the flow broke"}
    assert missing.error is not None
    assert missing.error["error"] == "FlowNotFound"


async def test_stopping_hands_the_runs_in_flight_back_to_the_queue(
    store: SQLiteStore, clock: FakeClock, gate: Gate, worker: RunWorker
) -> None:
    run_id = await pending(store, clock)
    assert await worker.claim() == 1
    await gate.arrived.wait()

    await worker.stop()

    assert await status(store, run_id) is models.RunStatus.PENDING
    [again] = await store.claim_runs(1, clock.now(), LEASE)  # another worker may take it now
    assert again.run_id == run_id


async def test_a_lost_lease_stops_the_run_here_without_an_ending(
    store: SQLiteStore, clock: FakeClock, gate: Gate, worker: RunWorker
) -> None:
    run_id = await pending(store, clock)
    assert await worker.claim() == 1
    await gate.arrived.wait()

    worker.lost([run_id])
    await worker.drain()

    assert worker.held() == []
    assert await status(store, run_id) is models.RunStatus.RUNNING  # whoever took it ends it


async def test_a_cancel_interrupts_a_run_in_its_flow(
    store: SQLiteStore, clock: FakeClock, gate: Gate, worker: RunWorker
) -> None:
    run_id = await pending(store, clock)
    assert await worker.claim() == 1
    await gate.arrived.wait()

    ended = await worker.cancel(run_id, "the user left")

    assert ended is not None
    assert ended.status is models.RunStatus.INTERRUPTED
    assert ended.error == {"error": "Interrupted", "message": "the user left"}


async def test_the_loop_claims_when_woken_without_waiting_for_its_poll(
    store: SQLiteStore, clock: FakeClock, gate: Gate, worker: RunWorker
) -> None:
    """The poll interval is an hour: only the wake-up can start the run."""
    loop = asyncio.create_task(worker.run_forever())
    try:
        # One step of the loop queues its first claim; the writer runs jobs in order, so that
        # claim finds nothing and the loop goes to wait.
        await asyncio.sleep(0)
        run_id = await pending(store, clock)
        worker.service.runs_ready.set()
        async with asyncio.timeout(10):
            await gate.arrived.wait()
        assert gate.started == [run_id]
    finally:
        gate.open.set()
        await worker.stop()
        await loop
