"""Heartbeat leases: work that outlives its lease is renewed, not sent or run a second time.

Leases are short (``lease_seconds``) and renewed every ``heartbeat_seconds`` while the work is
alive, so a request or a run may take longer than a lease. Timeouts need no longer stay below
the lease; they stay bounded (``MAX_TIMEOUT``), so a hung receiver cannot hold a delivery for
ever.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import errors
from gateway.app import create_app
from gateway.outbox.delivery import MAX_TIMEOUT
from gateway.settings import FlowSettings, Settings, load_settings
from gateway.testing import Receiver, Reply
from tests.integration.helpers import finished_run, query_rows, settled_delivery

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
SHORT_LEASES = {"lease_seconds": 1.0, "heartbeat_seconds": 0.2}


@pytest.mark.parametrize(
    ("environ", "refused"),
    [
        ({"GATEWAY_DELIVERY_TIMEOUT": "150"}, None),
        ({"GATEWAY_DELIVERY_TIMEOUT": str(MAX_TIMEOUT)}, None),
        ({"GATEWAY_DELIVERY_TIMEOUT": "300.5"}, r"delivery_timeout: must be above 0 and at most"),
        ({"GATEWAY_DELIVERY_TIMEOUT": "0"}, r"delivery_timeout: must be above 0"),
        ({"GATEWAY_DELIVERY_TIMEOUT": "nan"}, r"delivery_timeout: must be above 0"),
        ({"GATEWAY_LEASE_SECONDS": "4", "GATEWAY_HEARTBEAT_SECONDS": "1.9"}, None),
        ({"GATEWAY_LEASE_SECONDS": "4", "GATEWAY_HEARTBEAT_SECONDS": "2"}, r"below half of"),
        ({"GATEWAY_HEARTBEAT_SECONDS": "0"}, r"heartbeat_seconds \(0\) must be above 0"),
        ({"GATEWAY_LEASE_SECONDS": "-1"}, r"lease_seconds must be a positive"),
        ({"GATEWAY_LEASE_SECONDS": "inf"}, r"lease_seconds must be a positive"),
    ],
)
def test_settings_bound_timeouts_and_keep_heartbeats_inside_the_lease(
    environ: dict[str, str], refused: str | None
) -> None:
    if refused is None:
        load_settings(CONFIG, environ)
        return
    with pytest.raises(errors.ConfigError, match=refused):
        load_settings(CONFIG, environ)


@pytest.mark.parametrize("name", ["run_lease_seconds", "delivery_lease_seconds"])
def test_the_old_lease_settings_say_what_replaced_them(tmp_path: Path, name: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"{name} = 60\n")
    with pytest.raises(errors.ConfigError, match=f"{name} in .*: replaced by lease_seconds"):
        load_settings(config, {})


@pytest.mark.parametrize("timeout", [MAX_TIMEOUT + 1, 1e9, 0])
async def test_an_endpoint_timeout_beyond_the_bound_is_refused(
    gateway: Any, receiver: Receiver, timeout: float
) -> None:
    response = await gateway.post(
        "/api/v1/endpoints", json={"url": receiver.url, "timeout": timeout}
    )
    assert response.status == 422
    assert (await response.json())["detail"].startswith("timeout: must be")
    assert await (await gateway.get("/api/v1/endpoints")).json() == []

    created = await gateway.post("/api/v1/endpoints", json={"url": receiver.url, "timeout": 150})
    assert created.status == 201, "longer than any lease, and renewed while in flight"
    path = f"/api/v1/endpoints/{(await created.json())['endpoint_id']}"
    refused = await gateway.patch(path, json={"timeout": timeout, "description": "changed"})
    assert refused.status == 422
    kept = await (await gateway.get(path)).json()
    assert (kept["timeout"], kept["description"]) == (150, "")


async def test_a_request_longer_than_the_lease_is_sent_once(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
) -> None:
    """The receiver answers after two and a half leases: the heartbeat keeps the delivery
    leased meanwhile, so no second POST goes out and one try is recorded."""
    settings = make_settings(delivery_timeout=10.0, **SHORT_LEASES)
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    receiver.script(Reply(200, delay=2.5))
    response = await gateway.post(
        "/api/v1/webhook/echo", params={"webhook": receiver.url}, json={"n": 1}
    )
    run_id = (await response.json())["run_id"]
    delivery = await settled_delivery(gateway, run_id, "succeeded")
    assert [attempt["status_code"] for attempt in delivery["attempt_log"]] == [200]
    assert len(receiver.received) == 1


async def test_a_run_longer_than_the_lease_runs_once(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    shipped = make_settings(**SHORT_LEASES)
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    settings = shipped.replace(flows={**shipped.flows, "slow": slow})
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    response = await gateway.post("/api/v1/webhook/slow", json={"seconds": 2.5})
    assert response.status == 202, await response.text()
    run_id = (await response.json())["run_id"]
    assert (await finished_run(gateway, run_id))["status"] == "success"
    assert query_rows(settings, f"SELECT attempt FROM runs WHERE run_id = '{run_id}'") == [(1,)]
