"""Group commit: one writer connection runs many small transactions under one COMMIT.

Durability costs one fsync per batch instead of one per request, and the whole batch crosses
to the connection's thread in a single hand-off: jobs are plain functions of a ``sqlite3``
connection, run back to back in that thread, each inside its own SAVEPOINT so that one failing
job fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
import structlog
import tenacity

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]

log = structlog.get_logger(__name__)


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def run_batch(conn: sqlite3.Connection, jobs: list[Job]) -> list[Outcome]:
    """In the connection's thread: one transaction, a savepoint per job, one commit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[Outcome] = []
        for job in jobs:
            conn.execute("SAVEPOINT job")
            try:
                value = job(conn)
            except Exception as exc:  # noqa: BLE001 - handed to the job's caller
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


class GroupCommitWriter:
    def __init__(self, conn: aiosqlite.Connection, max_batch: int = 512) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0

    @property
    def backlog(self) -> int:
        """Writes waiting for their commit."""
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sqlite-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        if not self._task.done():
            await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._task is None or self._task.done():
            raise RuntimeError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await self._commit([job for job, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one batch
                log.error("store_batch_failed", jobs=len(batch), error=str(exc))
                outcomes = [(False, exc)] * len(batch)
            else:
                self.batches += 1
                self.jobs += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    @tenacity.retry(
        retry=tenacity.retry_if_exception(_is_locked),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.5),
        reraise=True,
    )
    async def _commit(self, jobs: list[Job]) -> list[Outcome]:
        # aiosqlite runs every call on its connection's own thread; handing it the whole
        # batch as one function is what makes a batch cost one thread hop, not one per query.
        conn = self._conn
        outcomes: list[Outcome] = await conn._execute(  # type: ignore[no-untyped-call]
            lambda: run_batch(conn._conn, jobs)
        )
        return outcomes
