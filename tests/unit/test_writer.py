"""The group-commit writer: writes queued together share one COMMIT, and each job still gets
its own answer. A real SQLite file; batches are counted, never timed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

from gateway.store.sqlite import SQLiteStore
from gateway.store.writer import GroupCommitWriter

Writer = Callable[..., Awaitable[GroupCommitWriter]]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "writer.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (n INTEGER PRIMARY KEY)")
    return path


@pytest.fixture
async def new_writer(database: Path) -> AsyncIterator[Writer]:
    """Starts writers on the test's file (``max_batch`` as given); stops them all at the end."""
    opened: list[tuple[GroupCommitWriter, aiosqlite.Connection]] = []

    async def make(**options: int) -> GroupCommitWriter:
        conn = await aiosqlite.connect(database, isolation_level=None)
        writer = GroupCommitWriter(conn, **options)
        writer.start()
        opened.append((writer, conn))
        return writer

    yield make
    for writer, conn in opened:
        await writer.stop()
        await conn.close()


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO items (n) VALUES (?)", (n,))
        return n

    return job


def stored(database: Path) -> list[int]:
    """What another connection reads: only committed rows."""
    with sqlite3.connect(database) as conn:
        return [n for (n,) in conn.execute("SELECT n FROM items ORDER BY n")]


async def test_writes_queued_together_share_one_commit(new_writer: Writer, database: Path) -> None:
    writer = await new_writer()

    answers = await asyncio.gather(*(writer.submit(insert(n)) for n in range(20)))

    assert answers == list(range(20))
    assert (writer.batches, writer.jobs) == (1, 20)
    assert stored(database) == list(range(20))


async def test_a_failing_job_fails_alone_and_its_writes_are_undone(
    new_writer: Writer, database: Path
) -> None:
    writer = await new_writer()

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items (n) VALUES (100)")
        raise ValueError("this job changed its mind")

    answers = await asyncio.gather(
        writer.submit(insert(1)),
        writer.submit(half_then_fail),
        writer.submit(insert(1)),  # a constraint violation: SQLite's own error, also alone
        writer.submit(insert(2)),
        return_exceptions=True,
    )

    assert answers[0] == 1
    assert answers[3] == 2
    assert isinstance(answers[1], ValueError)
    assert isinstance(answers[2], sqlite3.IntegrityError)
    assert writer.batches == 1
    assert stored(database) == [1, 2]
    assert await writer.submit(insert(3)) == 3  # the writer carries on


async def test_a_batch_takes_at_most_max_batch_jobs(new_writer: Writer, database: Path) -> None:
    writer = await new_writer(max_batch=2)

    await asyncio.gather(*(writer.submit(insert(n)) for n in range(5)))

    assert (writer.batches, writer.jobs) == (3, 5)
    assert stored(database) == list(range(5))


async def test_a_lone_write_commits_at_once_in_a_batch_of_its_own(
    new_writer: Writer, database: Path
) -> None:
    """Nothing else queued: the writer does not wait for company (a wait would show as a
    hang here, or as the two writes sharing a batch)."""
    writer = await new_writer()

    assert await writer.submit(insert(1)) == 1
    assert stored(database) == [1]
    assert await writer.submit(insert(2)) == 2

    assert (writer.batches, writer.jobs) == (2, 2)
    assert writer.backlog == 0


async def test_the_sqlite_store_takes_its_writers_max_batch(tmp_path: Path) -> None:
    """``max_batch=1``: one commit per write, what the benchmark compares group commit with."""
    store = SQLiteStore(tmp_path / "store.db", max_batch=1)
    await store.open()
    try:
        before = store.writer.batches
        await asyncio.gather(*(store.writer.submit(lambda conn: None) for _ in range(3)))
        assert store.writer.batches - before == 3
    finally:
        await store.close()
