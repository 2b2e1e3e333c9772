"""Group commit: one writer connection runs many small transactions under one COMMIT.

Durability costs one fsync per batch instead of one per request, and the whole batch crosses
to the connection's thread in a single hand-off: jobs are plain functions of a ``sqlite3``
connection, run back to back in that thread, each inside its own SAVEPOINT so that one failing
job fails only its own caller.

A write the storage refuses (disk full, I/O error, read-only file) fails the whole batch as
``errors.StoreUnavailable``, and the writer remembers it until a write gets through again: that is
what ``/healthz`` reports.
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

from gateway import errors

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]
MAX_BATCH = 512
"""Jobs under one COMMIT at most, so that one batch cannot hold the writer for long."""

log = structlog.get_logger(__name__)


# SQLite's primary result codes for storage that cannot take a write: it is full, failing, or
# read-only, or a file the write needs (journal, WAL) cannot be created.
_STORAGE_FAILURES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def is_storage_failure(exc: BaseException) -> bool:
    """The storage refused the operation; a retry succeeds only once space or the disk is back."""
    if not isinstance(exc, sqlite3.Error) or exc.sqlite_errorcode is None:
        return False
    return exc.sqlite_errorcode & 0xFF in _STORAGE_FAILURES


def storage_unavailable(exc: BaseException) -> errors.StoreUnavailable:
    """What callers get instead of the driver's error: 503 with ``Retry-After``."""
    return errors.StoreUnavailable(f"The store failed: {exc}; retry later")


def probe_write(conn: sqlite3.Connection) -> None:
    """Ask the storage for what any insert needs, a new page and a frame written at commit,
    and leave nothing behind: the page is rolled back and the header rewritten unchanged."""
    conn.execute("SAVEPOINT probe")
    try:
        conn.execute("CREATE TABLE hookgate_write_probe (x)")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO probe")
            conn.execute("RELEASE probe")
    with contextlib.closing(conn.execute("PRAGMA user_version")) as cursor:
        (version,) = cursor.fetchone()
    conn.execute(f"PRAGMA user_version = {int(version)}")


def run_batch(conn: sqlite3.Connection, jobs: list[Job]) -> tuple[list[Outcome], int]:
    """In the connection's thread: one transaction, a savepoint per job, one commit. Returns each
    job's outcome and how many rows the committed jobs changed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[Outcome] = []
        changes = 0
        for job in jobs:
            conn.execute("SAVEPOINT job")
            before = conn.total_changes
            try:
                value = job(conn)
            except Exception as exc:  # handed to the job's caller, unless the storage failed
                if is_storage_failure(exc):
                    raise  # SQLite may have rolled the whole transaction back already
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((True, value))
                changes += conn.total_changes - before
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes, changes


class GroupCommitWriter:
    def __init__(self, conn: aiosqlite.Connection, max_batch: int = MAX_BATCH) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0
        self.write_failure: str | None = None

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

    async def check_writable(self) -> None:
        """Raise ``StoreUnavailable`` while the last write the storage refused has not been
        followed by one that got through; a probe write tells whether it would get through now."""
        if self.write_failure is not None:
            await self.submit(probe_write)

    def _refused(self, exc: BaseException) -> errors.StoreUnavailable:
        if self.write_failure is None:
            log.error("store_unwritable", error=str(exc))
        self.write_failure = str(exc)
        return storage_unavailable(exc)

    def _wrote(self) -> None:
        if self.write_failure is not None:
            log.info("store_writable_again", after=self.write_failure)
        self.write_failure = None

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            jobs = [job for job, _ in batch]
            try:
                outcomes, changed = await self._commit(jobs)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one batch
                failure: BaseException = exc
                if is_storage_failure(exc):
                    failure = self._refused(exc)
                else:
                    log.error("store_batch_failed", jobs=len(batch), error=str(exc))
                outcomes = [(False, failure)] * len(batch)
            else:
                self.batches += 1
                self.jobs += len(batch)
                if changed or probe_write in jobs:
                    self._wrote()
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

    async def _commit(self, jobs: list[Job]) -> tuple[list[Outcome], int]:
        """One try, and only a batch that found the file locked (another process writing)
        pays for the retrying: most batches commit at the first try."""
        try:
            return await self._run(jobs)
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
        return await self._run_retrying(jobs)

    @tenacity.retry(
        retry=tenacity.retry_if_exception(_is_locked),
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.5),
        reraise=True,
    )
    async def _run_retrying(self, jobs: list[Job]) -> tuple[list[Outcome], int]:
        return await self._run(jobs)

    async def _run(self, jobs: list[Job]) -> tuple[list[Outcome], int]:
        # aiosqlite runs every call on its connection's own thread; handing it the whole
        # batch as one function is what makes a batch cost one thread hop, not one per query.
        conn = self._conn
        result: tuple[list[Outcome], int] = await conn._execute(  # type: ignore[no-untyped-call]
            lambda: run_batch(conn._conn, jobs)
        )
        return result
