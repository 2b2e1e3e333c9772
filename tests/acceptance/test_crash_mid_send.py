"""A crash in the middle of a send: the try that was cut short stays on record.

The receiver holds the first callback open; while it does, ``hookgate serve`` is SIGKILLed.
Nobody can know whether that request was processed, so after the restart the delivery's
attempt log shows it with an unknown outcome, then the try that succeeded, and the attempt
count matches the POSTs the receiver saw.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.store.base import ATTEMPT_OUTCOME_UNKNOWN
from gateway.testing import GatewayProcess, eventually, gateway_env

pytestmark = pytest.mark.slow

# The restarted gateway takes the delivery back at once (it is the file's only process); the
# timeout is far above the moment of the kill.
MID_SEND_ENV = {
    "GATEWAY_DELIVERY_TIMEOUT": "2.5",
    "GATEWAY_RETRY_SCHEDULE": "0.2,0.5,1",
    "GATEWAY_RETRY_JITTER": "0",
    "GATEWAY_POLL_INTERVAL": "0.1",
    "GATEWAY_LOG_FORMAT": "json",
}


class HoldingReceiver:
    """Records every POST; holds the first one open until ``release`` (after the kill)."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.first = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append({k.lower(): v for k, v in request.headers.items()})
        if len(self.received) == 1:
            self.first.set()
            await self.release.wait()
        return web.Response(text="ok")


@pytest.fixture
async def holding_receiver(
    aiohttp_server: Callable[..., Any],
) -> AsyncIterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))
    yield receiver
    receiver.release.set()


def stored_tries(database: Path, delivery_id: str) -> tuple[int, list[tuple[Any, ...]]]:
    """The delivery's attempt count and attempt rows, read from the killed process's file."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        (attempts,) = conn.execute(
            "SELECT attempts FROM deliveries WHERE delivery_id = ?", (delivery_id,)
        ).fetchone()
        rows = conn.execute(
            "SELECT attempt, status_code, error FROM attempts WHERE delivery_id = ?"
            " ORDER BY attempt_id",
            (delivery_id,),
        ).fetchall()
    conn.close()
    return int(attempts), rows


@pytest.mark.timeout(90)
async def test_a_try_cut_short_by_sigkill_shows_with_an_unknown_outcome(
    spawn_gateway: Callable[..., GatewayProcess],
    holding_receiver: HoldingReceiver,
    tmp_path: Path,
) -> None:
    database = tmp_path / "gw.db"
    env = gateway_env(**MID_SEND_ENV)
    timeout = aiohttp.ClientTimeout(total=10)

    first = spawn_gateway(f"sqlite:///{database}", env)
    base = await asyncio.to_thread(first.wait_ready)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        endpoint = {"url": holding_receiver.url}
        async with http.post(f"{base}/api/v1/endpoints", json=endpoint) as response:
            assert response.status == 201, await response.text()
        async with http.post(f"{base}/api/v1/webhook/echo", json={"n": 1}) as response:
            assert response.status == 202, await response.text()
        await asyncio.wait_for(holding_receiver.first.wait(), 20)
        first.kill()  # while the receiver still holds the request open
    holding_receiver.release.set()
    delivery_id = holding_receiver.received[0]["webhook-id"]

    # On disk, the try was recorded as started before its request left, and counted.
    assert stored_tries(database, delivery_id) == (1, [(1, None, None)])

    second = spawn_gateway(f"sqlite:///{database}", env)
    base = await asyncio.to_thread(second.wait_ready)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def delivered() -> dict[str, Any] | None:
            async with http.get(f"{base}/api/v1/deliveries/{delivery_id}") as response:
                assert response.status == 200, await response.text()
                view: dict[str, Any] = await response.json()
            return view if view["status"] == "succeeded" else None

        view = await eventually(delivered, timeout=30, interval=0.1)
        async with http.get(f"{base}/inspect/deliveries/{delivery_id}") as response:
            assert response.status == 200, await response.text()
            page = await response.text()

    tries = [(a["attempt"], a["status_code"], a["error"]) for a in view["attempt_log"]]
    assert tries == [(1, None, ATTEMPT_OUTCOME_UNKNOWN), (2, 200, None)]
    assert view["attempts"] == len(holding_receiver.received) == 2
    assert {r["webhook-id"] for r in holding_receiver.received} == {delivery_id}
    assert view["payload"]["status"] == "success"
    assert "outcome unknown" in page
    assert ATTEMPT_OUTCOME_UNKNOWN in page
