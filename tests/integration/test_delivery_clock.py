"""Endpoint promises that depend on time: a rate limit spacing the sends, a rotated secret that
stops signing once its overlap is over, a per-endpoint timeout cutting a try short.

Rate and overlap run on a fake clock that the test moves, so nothing waits for wall time; the
timeout is real time by nature, so its receiver holds the request open until the test ends
rather than answering after a delay the test must outlast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
import standardwebhooks
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import FakeClock, Receiver, eventually
from tests.integration.helpers import holding_receiver, settled_delivery

Client = TestClient[Any, Any]


@pytest.fixture
def clock() -> FakeClock:
    """Starts at the real time, so receivers' timestamp tolerance accepts what it signs."""
    return FakeClock(time.time())


async def on_clock(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> Client:
    client: Client = await aiohttp_client(create_app(settings, clock=clock))
    return client


async def endpoint(gateway: Client, url: str, **extra: Any) -> dict[str, Any]:
    response = await gateway.post("/api/v1/endpoints", json={"url": url, **extra})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def trigger(gateway: Client, n: int = 0) -> str:
    response = await gateway.post("/api/v1/webhook/echo", json={"n": n})
    assert response.status == 202
    run_id: str = (await response.json())["run_id"]
    return run_id


async def deliveries(gateway: Client, endpoint_id: str) -> list[dict[str, Any]]:
    response = await gateway.get("/api/v1/deliveries", params={"endpoint_id": endpoint_id})
    found: list[dict[str, Any]] = await response.json()
    return found


async def held_back(gateway: Client, endpoint_id: str, count: int) -> None:
    """Wait until ``count`` deliveries are pending and scheduled, none of them tried yet:
    the dispatcher has seen them and put them off."""

    async def check() -> bool:
        waiting = [
            d
            for d in await deliveries(gateway, endpoint_id)
            if d["status"] == "pending" and d["attempts"] == 0 and d["next_attempt_at"]
        ]
        return len(waiting) == count

    await eventually(check)


async def test_a_rate_limit_spaces_the_sends_and_uses_no_attempts(
    aiohttp_client: Callable[..., Any],
    settings: Settings,
    clock: FakeClock,
    receiver: Receiver,
) -> None:
    gateway = await on_clock(aiohttp_client, settings, clock)
    hook = await endpoint(gateway, receiver.url, rate_limit=1)
    runs = [await trigger(gateway, n) for n in range(3)]

    await receiver.wait_for(1)
    await held_back(gateway, hook["endpoint_id"], 2)
    assert len(receiver.received) == 1, "one a second: the others wait for their turn"

    clock.advance(1.0)
    await receiver.wait_for(2)
    await held_back(gateway, hook["endpoint_id"], 1)
    assert len(receiver.received) == 2

    clock.advance(1.0)
    await receiver.wait_for(3)
    for run_id in runs:
        assert (await settled_delivery(gateway, run_id, "succeeded"))["attempts"] == 1


async def test_a_rate_limit_holds_across_gateways_on_one_database(
    aiohttp_client: Callable[..., Any],
    settings: Settings,
    clock: FakeClock,
    receiver: Receiver,
) -> None:
    """Two gateways on one database (``serve --workers``, or several hosts on PostgreSQL)
    send to a rate-limited endpoint at its rate together, not each at its rate."""
    gateways = [await on_clock(aiohttp_client, settings, clock) for _ in range(2)]
    hook = await endpoint(gateways[0], receiver.url, rate_limit=1)
    runs = [await trigger(gateways[n % 2], n) for n in range(4)]

    await receiver.wait_for(1)
    await held_back(gateways[0], hook["endpoint_id"], 3)
    assert len(receiver.received) == 1, "one a second between both gateways"

    clock.advance(1.0)
    await receiver.wait_for(2)
    await held_back(gateways[1], hook["endpoint_id"], 2)
    assert len(receiver.received) == 2

    for sent in (3, 4):
        clock.advance(1.0)
        await receiver.wait_for(sent)
    for run_id in runs:
        assert (await settled_delivery(gateways[0], run_id, "succeeded"))["attempts"] == 1


async def test_the_old_secret_stops_signing_when_the_overlap_ends(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    receiver: Receiver,
) -> None:
    gateway = await on_clock(aiohttp_client, make_settings(secret_rotation_overlap=60), clock)
    hook = await endpoint(gateway, receiver.url)
    path = f"/api/v1/endpoints/{hook['endpoint_id']}"
    new_secret = (await (await gateway.post(f"{path}/rotate-secret")).json())["secret"]
    old, new = standardwebhooks.Webhook(hook["secret"]), standardwebhooks.Webhook(new_secret)

    await trigger(gateway, 1)
    [during] = await receiver.wait_for(1)
    old.verify(during.body, during.headers)
    new.verify(during.body, during.headers)
    assert len(parse_qs(during.path_qs.split("?", 1)[1])["hookgate_token"]) == 2

    clock.advance(59)
    assert (await (await gateway.get(path)).json())["previous_secret_expires_at"] is not None
    clock.advance(2)
    assert (await (await gateway.get(path)).json())["previous_secret_expires_at"] is None
    await trigger(gateway, 2)
    _, after = await receiver.wait_for(2)
    new.verify(after.body, after.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        old.verify(after.body, after.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert len(parse_qs(after.path_qs.split("?", 1)[1])["hookgate_token"]) == 1


async def test_an_endpoints_own_timeout_cuts_its_try_short(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    """The gateway-wide timeout is long; the endpoint's short one is what ends the held try."""
    gateway: Client = await aiohttp_client(create_app(make_settings(delivery_timeout=50)))
    hanging = await holding_receiver(aiohttp_server, hold=1)
    try:
        await endpoint(gateway, hanging.url, timeout=2, retry_schedule=[0.01])
        run_id = await trigger(gateway)
        delivery = await settled_delivery(gateway, run_id, "succeeded")
    finally:
        hanging.release()
    first, second = delivery["attempt_log"]
    assert first["status_code"] is None
    assert "timed out after 2 s" in first["error"]
    assert second["status_code"] == 200
