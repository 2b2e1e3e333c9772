"""Delivery retries over real sockets: on 500, on a hang past the timeout, on a refused connection."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import standardwebhooks
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver
from tests.integration.helpers import finished_run, holding_receiver, settled_delivery


async def start(gateway: Any, url: str) -> tuple[str, str]:
    """Register ``url`` as an endpoint, trigger echo; return (endpoint secret, run id)."""
    endpoint = await (await gateway.post("/api/v1/endpoints", json={"url": url})).json()
    response = await gateway.post("/api/v1/webhook/echo", json={"n": 1})
    assert response.status == 202
    return endpoint["secret"], (await response.json())["run_id"]


async def test_500_is_retried_with_the_same_webhook_id(gateway: Any, receiver: Receiver) -> None:
    receiver.script(500, 503, 200)
    secret, run_id = await start(gateway, receiver.url)
    delivery = await settled_delivery(gateway, run_id, "succeeded")
    calls = await receiver.wait_for(3)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert delivery["attempts"] == 3
    assert {c.headers["webhook-id"] for c in calls} == {delivery["delivery_id"]}
    for call in calls:
        standardwebhooks.Webhook(secret).verify(call.body, call.headers)
    assert len({c.body for c in calls}) == 1, "every retry sends the same bytes"


async def test_a_hang_past_the_timeout_is_retried(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    """The first try is held open until the test ends; the retry is answered at once, well
    within the timeout, however busy the machine."""
    gateway: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(delivery_timeout=2))
    )
    hanging = await holding_receiver(aiohttp_server, hold=1)
    try:
        _, run_id = await start(gateway, hanging.url)
        delivery = await settled_delivery(gateway, run_id, "succeeded")
    finally:
        hanging.release()
    first, second = delivery["attempt_log"]
    assert first["status_code"] is None
    assert "timed out" in first["error"]
    assert second["status_code"] == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_refused_connection_dead_letters_then_manual_retry_delivers(
    gateway: Any, aiohttp_server: Callable[..., Any]
) -> None:
    port = free_port()
    secret, run_id = await start(gateway, f"http://127.0.0.1:{port}/hook")
    dead = await settled_delivery(gateway, run_id, "failed")
    assert dead["attempts"] == 3, "one try and the two retries of the schedule"
    assert all("connection failed" in a["error"] for a in dead["attempt_log"])
    assert (await finished_run(gateway, run_id))["status"] == "success"

    failed = await (await gateway.get("/api/v1/deliveries?status=failed")).json()
    assert [d["delivery_id"] for d in failed] == [dead["delivery_id"]]

    receiver = Receiver()
    await aiohttp_server(receiver.app(), host="127.0.0.1", port=port)
    response = await gateway.post(f"/api/v1/deliveries/{dead['delivery_id']}/retry")
    assert response.status == 202
    [call] = await receiver.wait_for(1)
    assert call.headers["webhook-id"] == dead["delivery_id"]
    standardwebhooks.Webhook(secret).verify(call.body, call.headers)
    done = await settled_delivery(gateway, run_id, "succeeded")
    assert done["attempts"] == 4


async def test_redirect_is_not_followed(gateway: Any, receiver: Receiver) -> None:
    receiver.script(302, 302, 302)
    _, run_id = await start(gateway, receiver.url)
    dead = await settled_delivery(gateway, run_id, "failed")
    assert [a["status_code"] for a in dead["attempt_log"]] == [302, 302, 302]
    assert len(receiver.received) == 3
