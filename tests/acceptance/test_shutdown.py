"""SIGTERM shuts the gateway down in order: deliveries in flight finish and are recorded."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.testing import GatewayProcess, Receiver, Reply, gateway_env


@pytest.mark.slow
async def test_sigterm_records_the_deliveries_in_flight(
    spawn_gateway: Callable[..., GatewayProcess],
    aiohttp_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    receiver = Receiver([Reply(200, delay=1.0)] * 10)
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    database = tmp_path / "gateway.db"
    gateway = spawn_gateway(f"sqlite:///{database}", gateway_env(GATEWAY_LOG_LEVEL="warning"))
    base = await asyncio.to_thread(gateway.wait_ready)
    async with aiohttp.ClientSession() as http:
        hook = {"url": str(server.make_url("/hook"))}
        assert (await http.post(f"{base}/api/v1/endpoints", json=hook)).status == 201
        for n in range(10):
            assert (await http.post(f"{base}/api/v1/webhook/echo", json={"n": n})).status == 202
    await receiver.wait_for(10)  # every callback is now waiting on the slow receiver

    gateway.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(gateway.process.wait, 20)

    assert exit_code == 0, gateway.diagnostics()
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT status, attempts, lease_expires_at FROM deliveries").fetchall()
    assert rows == [("succeeded", 1, None)] * 10, "each try was recorded; none is left leased"
