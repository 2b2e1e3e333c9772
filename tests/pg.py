"""Throwaway PostgreSQL databases for tests: each test gets a fresh one and drops it after.

The server is ``GATEWAY_TEST_POSTGRES`` (default: the project's local PostgreSQL 15 on
127.0.0.1:5432, trust auth, user ``postgres``). Outside CI an unreachable server skips the
PostgreSQL tests, saying why; with ``CI=true`` it fails them, so nothing lands untested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
PREFIX = "hookgate_test_"
_drop_at_exit: list[str] = []


def url_of(database: str) -> str:
    """The admin URL with its database replaced."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and PostgreSQL is unreachable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL is unreachable ({reason}); set GATEWAY_TEST_POSTGRES")


async def _admin() -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"{ADMIN_URL}: {exc}")
        raise
    return conn


async def create_database() -> str:
    """A new empty database; its URL."""
    name = PREFIX + secrets.token_hex(6)
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url_of(name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith(PREFIX), name
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def gateway_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The database the app under test uses: a SQLite file, or with
    ``GATEWAY_TEST_DATABASE=postgres`` a fresh PostgreSQL database."""
    backend = os.environ.get("GATEWAY_TEST_DATABASE", "sqlite").strip().lower()
    if backend in ("", "sqlite"):
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
    elif backend in ("postgres", "postgresql"):
        # Dropped when the session ends: the app under test may outlive this fixture (its
        # client fixture can be torn down after), and each DROP DATABASE costs a checkpoint.
        url = await create_database()
        _drop_at_exit.append(url)
        yield url
    else:
        raise pytest.UsageError(
            f"GATEWAY_TEST_DATABASE must be sqlite or postgres, not {backend!r}"
        )


def count_rows(url: str, table: str) -> int:
    """Rows in a table of a PostgreSQL database (committed data), from synchronous test code."""

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}"))
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the databases the app tests left for the end."""
    if not _drop_at_exit:
        return

    async def drop_all() -> None:
        for url in _drop_at_exit:
            await drop_database(url)

    asyncio.run(drop_all())
    _drop_at_exit.clear()
