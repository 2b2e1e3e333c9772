"""Throwaway PostgreSQL stores for tests: each test gets a schema of its own, dropped after.

A schema (``hookgate_test_<random>``, named in the URL's ``search_path``) is as empty as a new
database to the store, and dropping it is cheap, where every DROP DATABASE forces a checkpoint
(most of a second on a small machine). They live in the database ``GATEWAY_TEST_POSTGRES``
names (default: ``test`` on the project's local PostgreSQL 15 at 127.0.0.1:5432, trust auth,
user ``postgres``). An unreachable server is a missing part like any other (``tests/needs.py``):
outside CI it skips the PostgreSQL tests, saying why; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.store import without_password
from tests import needs

ADMIN_URL = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "hookgate_test_"
_drop_at_exit: list[str] = []


def url_of(database: str) -> str:
    """The admin URL with its database replaced."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _admin() -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        needs.missing(
            f"PostgreSQL at {without_password(ADMIN_URL)} is unreachable ({exc}); start it, or"
            " name another server in GATEWAY_TEST_POSTGRES"
        )
        raise
    return conn


async def create_schema() -> str:
    """A new empty schema; a database URL whose ``search_path`` is that schema alone."""
    name = PREFIX + secrets.token_hex(6)
    conn = await _admin()
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(ADMIN_URL)
    query = "&".join(q for q in (parts.query, f"search_path={name}") if q)
    return urlunsplit(parts._replace(query=query))


async def drop_schema(url: str) -> None:
    name = parse_qs(urlsplit(url).query)["search_path"][0]
    assert name.startswith(PREFIX), name
    conn = await _admin()
    try:
        # A gateway the test just stopped may still have a session finishing a statement on
        # the schema; when the server picks the drop as a deadlock's victim, drop it again.
        for attempt in range(10):
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                return
            except asyncpg.DeadlockDetectedError:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    url = await create_schema()
    try:
        yield url
    finally:
        await drop_schema(url)


class Role:
    """A login role of one test's own, owning that test's schema: the test can cut it off (no
    connections, read-only) as an outage would, and no other test notices."""

    def __init__(self, url: str) -> None:
        self.changed_at: datetime.datetime | None = None
        self.name = parse_qs(urlsplit(url).query)["search_path"][0]
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        self.url = urlunsplit(parts._replace(netloc=f"{self.name}@{host}"))

    async def admin(self, *statements: str) -> None:
        """Run ``statements`` (``{role}`` is the role's quoted name) as the administrator."""
        conn = await _admin()
        try:
            for statement in statements:
                await conn.execute(statement.format(role=f'"{self.name}"'))
            self.changed_at = await conn.fetchval("SELECT clock_timestamp()")
        finally:
            await conn.close()

    async def disconnect(self) -> None:
        """End every session of the role begun before its last change, as a server restart or
        a failover does. A session that was starting while the role changed (past the
        connection limit already) shows up a moment later, so the sweep repeats until two in a
        row find none; sessions begun since (read-only ones) are left alone."""
        conn = await _admin()
        try:
            quiet, rounds = 0, 0
            while quiet < 2:
                rounds += 1
                assert rounds < 100, f"sessions of {self.name} keep appearing"
                ended = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE usename = $1 AND backend_start <= coalesce($2::timestamptz, clock_timestamp())",
                    self.name,
                    self.changed_at,
                )
                quiet = 0 if ended else quiet + 1
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


@asynccontextmanager
async def own_role(url: str) -> AsyncIterator[Role]:
    """The schema of ``url``, owned by a new role of the same name, reached as that role."""
    role = Role(url)
    assert role.name.startswith(PREFIX), role.name
    await role.admin("CREATE ROLE {role} LOGIN", f'ALTER SCHEMA "{role.name}" OWNER TO {{role}}')
    try:
        yield role
    finally:
        await role.disconnect()
        await role.admin("DROP OWNED BY {role}", "DROP ROLE {role}")


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL store (a schema) for one test, dropped after it."""
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def gateway_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The database the app under test uses: a SQLite file, or with
    ``GATEWAY_TEST_DATABASE=postgres`` a fresh PostgreSQL schema."""
    backend = os.environ.get("GATEWAY_TEST_DATABASE", "sqlite").strip().lower()
    if backend in ("", "sqlite"):
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
    elif backend in ("postgres", "postgresql"):
        # Dropped when the session ends: the app under test may outlive this fixture (its
        # client fixture can be torn down after it).
        url = await create_schema()
        _drop_at_exit.append(url)
        yield url
    else:
        raise pytest.UsageError(
            f"GATEWAY_TEST_DATABASE must be sqlite or postgres, not {backend!r}"
        )


def fetch_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """A query's rows from a PostgreSQL store (committed data), from synchronous test code."""

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the schemas the app tests left for the end."""
    if not _drop_at_exit:
        return

    async def drop_all() -> None:
        for url in _drop_at_exit:
            await drop_schema(url)

    asyncio.run(drop_all())
    _drop_at_exit.clear()
