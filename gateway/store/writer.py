"""Group commit: one writer connection runs many small transactions under one COMMIT.

Durability costs one fsync per batch instead of one per request; that is where the ingest
rate comes from. Each job is an async function of the connection. If a batch fails, it is
rolled back and every job is retried alone, so one bad job fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite
import structlog
import tenacity

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[Any]]

log = structlog.get_logger(__name__)


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class GroupCommitWriter:
    def __init__(self, conn: aiosqlite.Connection, max_batch: int = 512) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0

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

    async def submit(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
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
                await self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._transaction([job for job, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller below
            if len(batch) == 1:
                _, future = batch[0]
                if not future.done():
                    future.set_exception(exc)
                return
            for item in batch:
                await self._commit([item])
            return
        self.batches += 1
        self.jobs += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    @tenacity.retry(
        retry=tenacity.retry_if_exception(_is_locked),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.5),
        reraise=True,
    )
    async def _transaction(self, jobs: list[Job]) -> list[Any]:
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            results = [await job(self._conn) for job in jobs]
            await self._conn.commit()
        except BaseException:
            await self._conn.rollback()
            raise
        return results
