"""Small helpers for talking to the gateway under test and reading its database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from aiohttp import web

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


class HoldingReceiver:
    """A receiver that holds requests open until ``release()``, then answers 200: a hanging
    endpoint whose end the test decides, so no test waits out a fixed delay. Only the first
    ``hold`` requests are held (all, when None); later ones are answered at once."""

    def __init__(self, hold: int | None = None) -> None:
        self.url = ""
        self.arrived = 0
        self._hold = hold
        self._released = asyncio.Event()
        self._changed = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        async with self._changed:
            self.arrived += 1
            held = self._hold is None or self.arrived <= self._hold
            self._changed.notify_all()
        if held:
            await self._released.wait()
        return web.Response(text="ok")

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.arrived >= count), timeout)

    def release(self) -> None:
        self._released.set()


async def holding_receiver(
    aiohttp_server: Callable[..., Any], hold: int | None = None
) -> HoldingReceiver:
    receiver = HoldingReceiver(hold)
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))
    return receiver
