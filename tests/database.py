"""A store's database read or written beside the store, as an older version, an operator or a
broken disk would: on either backend, with ``?`` placeholders in the SQL. It is a coroutine on
purpose: a test that blocked its event loop on it could wait for a lock held by a transaction
of the app under test, which that loop can then never finish.

Tests use it to check what is really stored (a secret sealed, a header masked, nothing written
by a refused request) and to leave rows the current code would refuse to write.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
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


async def tables(database_url: str, names: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each named table, read in one connection."""
    if backend_of(database_url) == "sqlite":
        return {name: _sqlite(database_url, f"SELECT * FROM {name}", ()) for name in names}
    conn = await asyncpg.connect(database_url)
    try:
        return {
            name: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {name}")]
            for name in names
        }
    finally:
        await conn.close()


def _sqlite(database_url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path_from_url(database_url), timeout=10)) as db, db:
        return [tuple(row) for row in db.execute(sql, params)]
