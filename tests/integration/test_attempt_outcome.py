"""Every try is on record from before its request leaves: in flight, then its outcome; a try
whose process stopped mid-send shows an unknown outcome and counts toward the retry budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import keys, models
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import base
from gateway.testing import FakeClock, Receiver, eventually

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """One retry after the first try; a timeout long enough to hold a request open."""
    return make_settings(retry_schedule=(0.05,), delivery_timeout=30.0)


class HoldingReceiver:
    """Holds each request open until ``release`` is set."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived.set()
        await self.release.wait()
        return web.Response(text="ok")


@pytest.fixture
async def holding_receiver(aiohttp_server: Callable[..., Any]) -> AsyncIterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))
    yield receiver
    receiver.release.set()


async def delivery_view(client: Client, delivery_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/deliveries/{delivery_id}")
    assert response.status == 200, await response.text()
    view: dict[str, Any] = await response.json()
    return view


def tries(view: dict[str, Any]) -> list[tuple[int, int | None, str | None]]:
    return [(a["attempt"], a["status_code"], a["error"]) for a in view["attempt_log"]]


async def test_a_try_in_flight_is_on_record_and_shown_as_such(
    aiohttp_client: MakeClient, settings: Settings, holding_receiver: HoldingReceiver
) -> None:
    client = await aiohttp_client(create_app(settings))
    store = client.app[keys.store_key]
    delivery = models.NewDelivery(models.new_id(), holding_receiver.url, "run.success", b"{}")
    await store.enqueue_deliveries(None, [delivery], client.app[keys.clock_key].now())
    client.app[keys.runs_key].deliveries_ready.set()
    await asyncio.wait_for(holding_receiver.arrived.wait(), 10)

    view = await delivery_view(client, delivery.delivery_id)
    assert (view["attempts"], tries(view)) == (1, [(1, None, None)])
    page = await (await client.get(f"/inspect/deliveries/{delivery.delivery_id}")).text()
    assert "in flight" in page
    assert "outcome unknown" not in page

    holding_receiver.release.set()

    async def settled() -> dict[str, Any] | None:
        view = await delivery_view(client, delivery.delivery_id)
        return view if view["status"] == "succeeded" else None

    view = await eventually(settled)
    assert (view["attempts"], tries(view)) == (1, [(1, 200, None)])


async def test_a_try_cut_short_counts_toward_the_retry_budget(
    aiohttp_client: MakeClient, settings: Settings, receiver: Receiver
) -> None:
    """With one retry allowed, a try whose outcome is unknown plus one failed try is all:
    the delivery is dead after a single request the receiver really saw."""
    clock = FakeClock()
    client = await aiohttp_client(create_app(settings, clock=clock))
    store = client.app[keys.store_key]
    receiver.script(500)
    delivery = models.NewDelivery(models.new_id(), receiver.url, "run.error", b"{}")
    due = clock.now() + 100
    await store.enqueue_deliveries(None, [delivery], due)
    # A process that claimed it (recording its try as started) and stopped mid-send.
    policy = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5)
    [claimed] = await store.claim_deliveries(10, due, 5, policy)
    assert claimed.delivery_id == delivery.delivery_id
    clock.advance(106)  # the lease ran out

    async def dead() -> dict[str, Any] | None:
        view = await delivery_view(client, delivery.delivery_id)
        return view if view["status"] == "failed" else None

    view = await eventually(dead)
    assert tries(view) == [(1, None, base.ATTEMPT_OUTCOME_UNKNOWN), (2, 500, None)]
    assert view["attempts"] == 2
    assert len(receiver.received) == 1
