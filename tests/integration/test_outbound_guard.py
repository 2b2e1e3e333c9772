"""The outbound guard end to end: disguised loopback URLs are refused (422, nothing stored) by
every route that takes a callback URL, and whatever reaches the sender is checked again on the
address actually connected to, IP literals included."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestClient

from gateway import netguard
from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver
from tests.integration.helpers import count_rows, settled_delivery

TABLES = ("triggers", "runs", "endpoints", "deliveries", "crons")

# Each is the receiver's own loopback address as aiohttp would reach it, or as the system
# resolver would read it; {port} is the live receiver's port.
DISGUISED = [
    "http://１２７.０.０.１:{port}/hook",  # noqa: RUF001
    "http://①②⑦.⓪.⓪.①:{port}/hook",
    "http://127。0。0。1:{port}/hook",
    "http://127.0.0.1:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://127.1:{port}/hook",
    "http://0x7f.0.0.1:{port}/hook",
    "http://0177.0.0.1:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::7f00:1]:{port}/hook",
    "http://[2002:7f00:1::]:{port}/hook",
    "http://[64:ff9b::7f00:1]:{port}/hook",
]

Send = Callable[[TestClient[Any, Any], str], Awaitable[aiohttp.ClientResponse]]


def _post(path: str, body: dict[str, Any], field: str = "webhook") -> Send:
    async def send(gateway: TestClient[Any, Any], url: str) -> aiohttp.ClientResponse:
        return await gateway.post(path, json={**body, field: url})

    return send


async def _webhook_query(gateway: TestClient[Any, Any], url: str) -> aiohttp.ClientResponse:
    return await gateway.post("/api/v1/webhook/echo", params={"webhook": url}, json={})


ROUTES: dict[str, Send] = {
    "langflow webhook": _webhook_query,
    "langflow run": _post("/api/v1/run/echo", {"input_value": "hi"}),
    "langflow run advanced": _post("/api/v1/run/advanced/echo", {}),
    "langflow build": _post("/api/v1/build/echo/flow", {}),
    "endpoint create": _post("/api/v1/endpoints", {}, field="url"),
    "langgraph runs/wait": _post("/runs/wait", {"assistant_id": "echo", "input": {}}),
    "langgraph runs": _post("/runs", {"assistant_id": "echo", "input": {}}),
    "langgraph cron": _post("/runs/crons", {"assistant_id": "echo", "schedule": "0 0 1 1 *"}),
}


async def _strict_gateway(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], **overrides: Any
) -> tuple[TestClient[Any, Any], Settings]:
    settings = make_settings(allow_private_networks=False, **overrides)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client, settings


def _rows(settings: Settings) -> dict[str, int]:
    return {table: count_rows(settings, table) for table in TABLES}


def _port(receiver: Receiver) -> int:
    port = yarl.URL(receiver.url).port
    assert port is not None
    return port


@pytest.mark.parametrize("route", ROUTES)
async def test_every_callback_route_refuses_disguised_loopback_urls(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    route: str,
) -> None:
    gateway, settings = await _strict_gateway(aiohttp_client, make_settings)
    before = _rows(settings)
    for template in DISGUISED:
        url = template.format(port=_port(receiver))
        response = await ROUTES[route](gateway, url)
        assert response.status == 422, (url, await response.text())
        assert "blocked" in (await response.json())["detail"], url
    assert _rows(settings) == before
    assert receiver.received == []


async def test_updates_refuse_disguised_loopback_urls_and_keep_the_stored_one(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    gateway, settings = await _strict_gateway(
        aiohttp_client, make_settings, allowed_targets=("hooks.internal",)
    )
    created = await gateway.post(
        "/api/v1/endpoints", json={"url": "http://hooks.internal/in", "enabled": False}
    )
    assert created.status == 201, await created.text()
    endpoint_path = f"/api/v1/endpoints/{(await created.json())['endpoint_id']}"
    cron = await gateway.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *"})
    assert cron.status == 200, await cron.text()
    cron_path = f"/runs/crons/{(await cron.json())['cron_id']}"
    before = _rows(settings)
    for template in DISGUISED:
        url = template.format(port=_port(receiver))
        endpoint_update = await gateway.patch(endpoint_path, json={"url": url})
        assert endpoint_update.status == 422, url
        assert "blocked" in (await endpoint_update.json())["detail"]
        cron_update = await gateway.patch(cron_path, json={"webhook": url})
        assert cron_update.status == 422, url
    assert (await (await gateway.get(endpoint_path)).json())["url"] == "http://hooks.internal/in"
    assert (await (await gateway.post("/runs/crons/search", json={})).json())[0]["payload"].get(
        "webhook"
    ) is None
    assert _rows(settings) == before


async def test_a_normalised_url_is_stored_as_it_is_sent(
    gateway: TestClient[Any, Any], receiver: Receiver
) -> None:
    """Local mode allows loopback; the fullwidth spelling is stored as the client will send it."""
    fullwidth = f"http://１２７.０.０.１:{_port(receiver)}/hook"  # noqa: RUF001
    response = await gateway.post("/api/v1/endpoints", json={"url": fullwidth})
    assert response.status == 201, await response.text()
    assert (await response.json())["url"] == receiver.url
    assert (await gateway.post("/api/v1/webhook/echo", json={})).status == 202
    await receiver.wait_for(1)


async def _stored_while_local(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], url: str
) -> None:
    """Register ``url`` while loopback is allowed, as an earlier configuration may have."""
    local: TestClient[Any, Any] = await aiohttp_client(create_app(make_settings()))
    response = await local.post("/api/v1/endpoints", json={"url": url, "retry_schedule": [0.01]})
    assert response.status == 201, await response.text()
    await local.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
async def test_the_connected_address_is_checked_for_ip_literals_too(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    host: str,
) -> None:
    """aiohttp never asks a resolver about an IP literal: the connector itself refuses it, and
    the refusal is an attempt's error, not an exception out of the dispatcher."""
    await _stored_while_local(aiohttp_client, make_settings, f"http://{host}:{_port(receiver)}/h")
    strict, _ = await _strict_gateway(aiohttp_client, make_settings)
    response = await strict.post("/api/v1/webhook/echo", json={})
    dead = await settled_delivery(strict, (await response.json())["run_id"], "failed")
    assert dead["attempt_log"]
    for attempt in dead["attempt_log"]:
        assert "refused to connect to" in attempt["error"]
        assert "loopback address" in attempt["error"]
    assert receiver.received == []


@pytest.mark.parametrize(
    ("host", "allowed_targets", "delivered"),
    [
        ("127.0.0.1", ("127.0.0.0/8",), True),
        ("localhost", ("localhost",), True),
        ("127.0.0.1", ("localhost",), False),
        ("localhost", ("10.0.0.0/8",), False),
    ],
)
async def test_the_allow_list_holds_at_connect_time(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    host: str,
    allowed_targets: tuple[str, ...],
    delivered: bool,
) -> None:
    await _stored_while_local(aiohttp_client, make_settings, f"http://{host}:{_port(receiver)}/h")
    strict, _ = await _strict_gateway(
        aiohttp_client, make_settings, allowed_targets=allowed_targets
    )
    response = await strict.post("/api/v1/webhook/echo", json={})
    run_id = (await response.json())["run_id"]
    if delivered:
        await settled_delivery(strict, run_id, "succeeded")
        assert len(receiver.received) == 1
    else:
        dead = await settled_delivery(strict, run_id, "failed")
        assert "loopback address" in dead["attempt_log"][0]["error"]
        assert receiver.received == []


@dataclasses.dataclass(frozen=True)
class ChecksOnlyOnce(netguard.Policy):
    """Allows the first address it is asked about, then answers truthfully: stands for a
    connection path that skipped the check before connecting."""

    asked: list[str] = dataclasses.field(default_factory=list)

    def refusal(self, host: str, address: netguard.Address | None) -> str | None:
        self.asked.append(str(address))
        return None if len(self.asked) == 1 else super().refusal(host, address)


async def test_the_connected_peer_is_checked_before_the_request_is_written(
    receiver: Receiver,
) -> None:
    policy = ChecksOnlyOnce(allow_private=False)
    async with aiohttp.ClientSession(connector=netguard.GuardedConnector(policy)) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.post(receiver.url, data=b"{}")
    assert str(refused.value.os_error) == "refused to connect to 127.0.0.1: loopback address"
    assert policy.asked == ["127.0.0.1", "127.0.0.1"], "checked before and after connecting"
    assert receiver.received == []
