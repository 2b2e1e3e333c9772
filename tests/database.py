"""A store's database read or written beside the store, as an older version, an operator or a
broken disk would: on either backend, with ``?`` placeholders in the SQL.

Tests use it to check what is really stored (a secret sealed, a header masked, nothing written
by a refused request) and to leave rows the current code would refuse to write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import sqlite3
from contextlib import closing
from typing import Any

import asyncpg

from gateway.store import backend_of
from gateway.store.sqlite import path_from_url


async def raw(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the database itself, committed; the rows it returns."""
    if backend_of(database_url) == "sqlite":
        return _sqlite(database_url, sql, params)
    numbered = iter(range(1, len(params) + 1))
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *params)
    finally:
        await conn.close()
    return [tuple(row) for row in found]


def raw_now(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """``raw`` from synchronous code, a running event loop's included."""
    if backend_of(database_url) == "sqlite":
        return _sqlite(database_url, sql, params)
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, raw(database_url, sql, *params)).result()


def _sqlite(database_url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path_from_url(database_url), timeout=10)) as db, db:
        return [tuple(row) for row in db.execute(sql, params)]
