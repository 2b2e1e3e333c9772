"""Small helpers for talking to the gateway under test and reading its database."""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.settings import Settings
from gateway.store import backend_of
from gateway.store.sqlite import path_from_url
from gateway.testing import eventually
from tests import pg


def count_rows(settings: Settings, table: str) -> int:
    """Rows in a table of the gateway's real database (committed data)."""
    [(count,)] = query_rows(settings, f"SELECT COUNT(*) FROM {table}")
    return int(count)


def query_rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """A read-only query's rows from the gateway's real database, SQLite or PostgreSQL."""
    if backend_of(settings.database_url) == "postgres":
        return pg.fetch_rows(settings.database_url, sql)
    with sqlite3.connect(f"file:{path_from_url(settings.database_url)}?mode=ro", uri=True) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def insertion_order(settings: Settings) -> str:
    """The column that orders an append-only table's rows as they were inserted."""
    return "ctid" if backend_of(settings.database_url) == "postgres" else "rowid"


async def finished_run(gateway: Any, run_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await gateway.get(f"/api/v1/runs/{run_id}")
        run: dict[str, Any] = await response.json()
        return run if run["status"] not in ("pending", "running") else None

    result: dict[str, Any] = await eventually(check)
    return result


async def settled_delivery(gateway: Any, run_id: str, status: str) -> dict[str, Any]:
    """Wait until the run's only delivery reaches ``status``; return it with its attempts."""

    async def check() -> dict[str, Any] | None:
        deliveries = await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json()
        if len(deliveries) == 1 and deliveries[0]["status"] == status:
            detail: dict[str, Any] = await (
                await gateway.get(f"/api/v1/deliveries/{deliveries[0]['delivery_id']}")
            ).json()
            return detail
        return None

    result: dict[str, Any] = await eventually(check)
    return result
