"""The SQLite file, its migrations, its lock, and the connections every verb uses.

One group-committing writer (``GroupCommitWriter``) runs every write job in turn on one
connection, so the rules PostgreSQL spells as row locks come free here: a check and the insert
after it cannot interleave with another job. Reads go through a connection of their own, so
they never wait behind a commit. A second gateway process on the same file is refused (a
lock file); operator commands do not take the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import sqlite3
import weakref
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import structlog
import tenacity

from gateway import errors, models
from gateway.store import base, sql
from gateway.store.changes import ChangeFeed, Changes, changes
from gateway.store.secretbox import SecretBox
from gateway.store.writer import (
    MAX_BATCH,
    GroupCommitWriter,
    is_storage_failure,
    storage_unavailable,
)

log = structlog.get_logger(__name__)

MIGRATIONS = sql.migrations("gateway.store")
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


@dataclasses.dataclass
class _ProcessLock:
    fd: int
    owners: set[str]


# Files this process serves, each with the owners of its stores that serve it (tests run
# several apps on one file in one process; another process is another gateway).
_SERVED: dict[Path, _ProcessLock] = {}


# The change feed of each file: every store on it in this process publishes its commits there
# (one gateway has one store; tests run several apps on one file, like several processes).
_FEEDS: weakref.WeakValueDictionary[Path, ChangeFeed] = weakref.WeakValueDictionary()


def feed_of(path: Path) -> ChangeFeed:
    key = path.resolve()
    feed = _FEEDS.get(key)
    if feed is None:
        feed = _FEEDS[key] = ChangeFeed()
    return feed


def serve_file(path: Path, owner: str) -> set[str]:
    """Lock ``path`` for this process, as ``owner``; every owner in this process serving it.
    A second gateway process on the same file gets a clear ``StoreError``."""
    key = path.resolve()
    served = _SERVED.get(key)
    if served is None:
        served = _SERVED[key] = _ProcessLock(lock_database(key), set())
    served.owners.add(owner)
    return set(served.owners)


def stop_serving(path: Path, owner: str) -> None:
    key = path.resolve()
    served = _SERVED.get(key)
    if served is None or owner not in served.owners:
        return
    served.owners.discard(owner)
    if not served.owners:
        os.close(served.fd)  # closing the descriptor releases the lock
        del _SERVED[key]


def lock_database(path: Path) -> int:
    """Hold an exclusive lock on ``<path>.lock`` for as long as the returned descriptor stays
    open (the process's life): a second gateway on the same file gets a clear ``StoreError``
    instead of sharing it. Operator commands do not take it, so they work while a gateway runs."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise errors.StoreError(
            f"another gateway (pid {holder}) is serving {path}: a SQLite database takes one "
            "process; stop that one first, or use PostgreSQL (database_url = postgresql://…) "
            "to run several"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def path_from_url(database_url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, as SQLAlchemy spells them."""
    if not database_url.startswith("sqlite:///"):
        raise errors.ConfigError(f"not a sqlite URL: {database_url!r}")
    return Path(database_url.removeprefix("sqlite:///"))


class Database:
    """The file's writer and reader; the verbs of each aggregate build on it."""

    def __init__(
        self,
        path: Path | str,
        secret_key: str = "",
        *,
        must_exist: bool = False,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """``secret_key``: ``GATEWAY_SECRET_KEY``, the keys sealing endpoint secrets (newest
        first); empty means the install's generated key beside the database. ``must_exist``:
        opening refuses a missing or foreign file instead of creating a database (an operator
        command's mistyped path must not leave an empty one behind). ``max_batch``: the most
        write jobs one commit takes (1 turns group commit off, as the benchmark compares)."""
        self.path = Path(path)
        self.must_exist = must_exist
        self._secret_key = secret_key
        self._max_batch = max_batch
        self._secrets: SecretBox | None = None
        self._writer_conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self.owner = base.new_owner()
        self.feed = feed_of(self.path)

    @property
    def origin(self) -> str:
        return self.owner

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Changes]]:
        """The commits of every store on this file, as ``Changes``, each after it committed."""
        return self.feed.subscribe()

    def _changed(self, **kinds: Iterable[str] | None) -> None:
        """Announce a committed write (``run_created=[ids]`` is ``"run.created"``)."""
        change = changes(self.origin, **kinds)
        if change.kinds:
            self.feed.publish(change)

    def _attempted(self, delivery: models.Delivery, change: base.HealthChange | None) -> None:
        """Announce a recorded try, and its endpoint when the try changed its health."""
        self._changed(
            delivery_attempted=[delivery.delivery_id],
            endpoint_changed=[delivery.endpoint_id] if change and delivery.endpoint_id else [],
        )

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise errors.StoreError("the store is not open")
        return self._writer

    @property
    def secrets(self) -> SecretBox:
        if self._secrets is None:
            raise errors.StoreError("the store is not open")
        return self._secrets

    # lifecycle

    async def open(self) -> None:
        if self.must_exist:
            self._check_exists()
        try:
            await self._open()
        except (sqlite3.Error, OSError) as exc:
            raise errors.StoreError(f"cannot open the database {self.path}: {exc}") from None

    def _check_exists(self) -> None:
        if not self.path.is_file():
            raise errors.StoreError(f"no database at {self.path}")
        try:
            with self.path.open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise errors.StoreError(f"cannot open the database {self.path}: {exc}") from None
        if header not in (b"", b"SQLite format 3\x00"):
            raise errors.StoreError(f"{self.path} is not a SQLite database")

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(sqlite3.OperationalError),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1),
        reraise=True,
    )
    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secrets = SecretBox.for_database(self._secret_key, self.path.parent)
        writer = await self._connect()
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(writer)
            await self._on_open(writer)
        except BaseException:
            await writer.close()
            raise
        self._writer_conn = writer
        self._reader = await self._connect()
        self._writer = GroupCommitWriter(writer, self._max_batch)
        self._writer.start()
        log.info("store_opened", backend="sqlite", path=str(self.path))

    async def _on_open(self, conn: aiosqlite.Connection) -> None:
        """After the migrations, before the writer starts: bring stored values to the form this
        version keeps them in (the endpoint verbs seal secrets)."""

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> list[int]:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        await self._vacuum_incrementally(conn, rewrite=version > 0)
        applied = []
        for script in MIGRATIONS:
            number = sql.version(script)
            if number > version:
                await conn.executescript(
                    "BEGIN;" + script.read_text() + f";PRAGMA user_version={number};COMMIT;"
                )
                log.info("store_migrated", version=number)
                applied.append(number)
        return applied

    async def _vacuum_incrementally(self, conn: aiosqlite.Connection, *, rewrite: bool) -> None:
        """``auto_vacuum = INCREMENTAL``, so that the pages a prune frees can go back to the
        file system (``PRAGMA incremental_vacuum``). A new file takes it before its first
        table; a file made without it needs one ``VACUUM``, which rewrites it, once."""
        async with conn.execute("PRAGMA auto_vacuum") as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] == INCREMENTAL:
            return
        await conn.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")
        if rewrite:
            await conn.execute("VACUUM")
            log.info("store_vacuumed", path=str(self.path), auto_vacuum="incremental")

    async def migrate(self) -> list[int]:
        """Apply the migrations the file lacks, and nothing else; the versions applied."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = await self._connect()
            try:
                await conn.execute("PRAGMA journal_mode=WAL")
                return await self._migrate(conn)
            finally:
                await conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise errors.StoreError(f"cannot migrate the database {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        for conn in (self._reader, self._writer_conn):
            if conn is not None:
                await conn.close()
        self._reader = self._writer_conn = None
        stop_serving(self.path, self.owner)

    def write_backlog(self) -> int:
        return 0 if self._writer is None else self._writer.backlog

    async def ping(self) -> None:
        try:
            await self._fetchone("SELECT 1")
        except (sqlite3.Error, ValueError) as exc:
            raise errors.StoreError(f"sqlite unreachable: {exc}") from None
        await self.writer.check_writable()

    # reads go through one connection of their own, so they never wait behind a commit

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise errors.StoreError("the store is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            if is_storage_failure(exc):
                raise storage_unavailable(exc) from None
            raise errors.StoreError(f"database {self.path}: {exc}") from None

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # writes are jobs of the writer: plain functions of its sqlite3 connection

    async def _write_one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        """One statement with ``RETURNING``; the first row it returns."""

        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            return one(conn, sql, params)

        return await self.writer.submit(job)

    async def _write_count(self, sql: str, params: Sequence[Any]) -> int:
        """One statement; how many rows it changed."""

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        return await self.writer.submit(job)

    async def _renew(
        self, table: str, key: str, held: str, ids: Sequence[str], until: float
    ) -> list[str]:
        """One UPDATE: the leases this owner still holds on ``ids`` now last until ``until``."""
        if not ids:
            return []

        def job(conn: sqlite3.Connection) -> list[str]:
            with closing(
                conn.execute(
                    f"UPDATE {table} SET lease_expires_at = ? WHERE {key} IN ({marks(len(ids))})"
                    f" AND {held} AND lease_owner = ? RETURNING {key}",
                    (until, *ids, self.owner),
                )
            ) as cursor:
                return [row[0] for row in cursor.fetchall()]

        return await self.writer.submit(job)


def one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
    """The first row of a statement, its cursor closed."""
    with closing(conn.execute(sql, params)) as cursor:
        row: sqlite3.Row | None = cursor.fetchone()
    return row


def insert(conn: sqlite3.Connection, table: str, columns: dict[str, Any]) -> None:
    """INSERT one row from a column → value mapping (column names are ours, never input)."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))


def marks(count: int) -> str:
    """``?, ?, …`` for ``count`` parameters."""
    return ", ".join("?" * count)
