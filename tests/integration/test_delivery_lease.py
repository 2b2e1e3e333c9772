"""A delivery's request ends before its lease does, so no second POST goes out while the first
is still in flight: endpoint timeouts and ``delivery_timeout`` are refused at or above the lease
less a margin, and the sender clamps whatever it is given below it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import errors
from gateway.app import create_app
from gateway.outbox.delivery import timeout_limit
from gateway.settings import Settings, load_settings
from gateway.testing import Receiver, Reply
from tests.integration.helpers import settled_delivery

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
LIMIT = timeout_limit(60.0)  # the default delivery_lease_seconds


def test_the_limit_keeps_a_margin_below_the_lease() -> None:
    assert timeout_limit(60.0) == 55.0
    assert timeout_limit(2.0) == 1.5


@pytest.mark.parametrize(
    ("environ", "refused"),
    [
        ({"GATEWAY_DELIVERY_TIMEOUT": "60"}, True),
        ({"GATEWAY_DELIVERY_TIMEOUT": "150"}, True),
        ({"GATEWAY_DELIVERY_TIMEOUT": str(LIMIT)}, True),
        ({"GATEWAY_DELIVERY_TIMEOUT": "54"}, False),
        ({"GATEWAY_DELIVERY_LEASE_SECONDS": "10", "GATEWAY_DELIVERY_TIMEOUT": "15"}, True),
        ({"GATEWAY_DELIVERY_LEASE_SECONDS": "10", "GATEWAY_DELIVERY_TIMEOUT": "7"}, False),
        ({"GATEWAY_DELIVERY_TIMEOUT": "nan"}, True),
    ],
)
def test_settings_refuse_a_delivery_timeout_that_reaches_the_lease(
    environ: dict[str, str], refused: bool
) -> None:
    if not refused:
        load_settings(CONFIG, environ)
        return
    with pytest.raises(errors.ConfigError, match=r"delivery_timeout .* must be below"):
        load_settings(CONFIG, environ)


@pytest.mark.parametrize("timeout", [LIMIT, 60, 150, 1e9])
async def test_an_endpoint_timeout_at_or_above_the_limit_is_refused(
    gateway: Any, receiver: Receiver, timeout: float
) -> None:
    response = await gateway.post(
        "/api/v1/endpoints", json={"url": receiver.url, "timeout": timeout}
    )
    assert response.status == 422
    assert (await response.json())["detail"].startswith("timeout: must be below 55 seconds")
    assert await (await gateway.get("/api/v1/endpoints")).json() == []

    created = await gateway.post("/api/v1/endpoints", json={"url": receiver.url, "timeout": 30})
    assert created.status == 201
    endpoint_id = (await created.json())["endpoint_id"]
    path = f"/api/v1/endpoints/{endpoint_id}"
    refused = await gateway.patch(path, json={"timeout": timeout, "description": "changed"})
    assert refused.status == 422
    assert "timeout: must be below" in (await refused.json())["detail"]
    kept = await (await gateway.get(path)).json()
    assert (kept["timeout"], kept["description"]) == (30, "")
    allowed = await gateway.patch(path, json={"timeout": LIMIT - 0.5})
    assert allowed.status == 200
    assert (await allowed.json())["timeout"] == LIMIT - 0.5


async def test_a_request_never_outlives_its_lease(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
) -> None:
    """Even given a timeout past the lease (as no valid config can give), the sender gives up
    before the lease lapses, so the retry goes out only once the first request is abandoned."""
    settings = make_settings(delivery_lease_seconds=2.0, delivery_timeout=10.0)
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    receiver.script(Reply(200, delay=2.5), 200)
    response = await gateway.post(
        "/api/v1/webhook/echo", params={"webhook": receiver.url}, json={"n": 1}
    )
    run_id = (await response.json())["run_id"]
    delivery = await settled_delivery(gateway, run_id, "succeeded")
    first, second = delivery["attempt_log"]
    assert first["error"] == "timed out after 1.5 s"
    first_ended = datetime.fromisoformat(first["started_at"]).timestamp() + (
        first["duration_ms"] / 1000
    )
    assert first_ended <= datetime.fromisoformat(second["started_at"]).timestamp()
    assert len(receiver.received) == 2
