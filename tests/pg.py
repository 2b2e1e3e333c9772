"""Throwaway PostgreSQL databases for tests: each test gets a fresh one and drops it after.

The server is ``GATEWAY_TEST_POSTGRES`` (default: the project's local PostgreSQL 15 on
127.0.0.1:5432, trust auth, user ``postgres``). Outside CI an unreachable server skips the
PostgreSQL tests, saying why; with ``CI=true`` it fails them, so nothing lands untested.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
PREFIX = "hookgate_test_"


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
