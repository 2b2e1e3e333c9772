"""The endpoint registry: create, read (secret masked), filter, update, delete; bad input refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog

from gateway.settings import Settings
from gateway.testing import Receiver
from tests.integration.helpers import count_rows, finished_run, settled_delivery


async def test_crud_masks_the_secret_after_creation(gateway: Any, receiver: Receiver) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    created = await gateway.post(
        "/api/v1/endpoints",
        json={"url": receiver.url, "secret": secret, "description": "ci", "flow_ids": ["echo"]},
    )
    assert created.status == 201
    endpoint = await created.json()
    assert endpoint["secret"] == secret
    endpoint_id = endpoint["endpoint_id"]
    assert created.headers["Location"] == f"/api/v1/endpoints/{endpoint_id}"

    fetched = await (await gateway.get(f"/api/v1/endpoints/{endpoint_id}")).json()
    listed = await (await gateway.get("/api/v1/endpoints")).json()
    for view in (fetched, *listed):
        assert secret not in json.dumps(view)
        assert view["secret"].startswith("whsec_")

    patched = await gateway.patch(
        f"/api/v1/endpoints/{endpoint_id}", json={"description": "changed", "enabled": False}
    )
    assert patched.status == 200
    body = await patched.json()
    assert (body["description"], body["enabled"], body["flow_ids"]) == ("changed", False, ["echo"])

    assert (await gateway.delete(f"/api/v1/endpoints/{endpoint_id}")).status == 204
    assert (await gateway.get(f"/api/v1/endpoints/{endpoint_id}")).status == 404
    assert (await gateway.delete(f"/api/v1/endpoints/{endpoint_id}")).status == 404


async def test_filters_choose_which_runs_reach_an_endpoint(
    gateway: Any, aiohttp_server: Any
) -> None:
    receivers = {name: Receiver() for name in ("all", "agent_only", "errors_only", "disabled")}
    for receiver in receivers.values():
        server = await aiohttp_server(receiver.app(), host="127.0.0.1")
        receiver.url = str(server.make_url("/hook"))
    filters: dict[str, dict[str, Any]] = {
        "all": {},
        "agent_only": {"flow_ids": ["agent"]},
        "errors_only": {"event_types": ["run.error"]},
        "disabled": {"enabled": False},
    }
    for name, extra in filters.items():
        response = await gateway.post(
            "/api/v1/endpoints", json={"url": receivers[name].url, **extra}
        )
        assert response.status == 201
    run_ids = []
    for flow in ("echo", "agent", "fail"):
        response = await gateway.post(f"/api/v1/webhook/{flow}", json={"topic": "x"})
        run_ids.append((await response.json())["run_id"])
    for run_id in run_ids:
        await finished_run(gateway, run_id)
    await receivers["all"].wait_for(3)
    await receivers["agent_only"].wait_for(1)
    await receivers["errors_only"].wait_for(1)

    def flows_seen(name: str) -> list[str]:
        return sorted(json.loads(r.body)["flow_id"] for r in receivers[name].received)

    assert flows_seen("all") == ["agent", "echo", "fail"]
    assert flows_seen("agent_only") == ["agent"]
    assert flows_seen("errors_only") == ["fail"]
    assert flows_seen("disabled") == []


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"", 400, "empty"),
        (b"{not json", 400, "Invalid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b"{}", 422, "url"),
        (b'{"url": 42}', 422, "url"),
        (b'{"url": "gopher://x"}', 422, "http"),
        (b'{"url": "http://127.0.0.1:9/x", "event_types": ["run.exploded"]}', 422, "run.exploded"),
        (b'{"url": "http://127.0.0.1:9/x", "flow_ids": ["nope"]}', 422, "nope"),
        (b'{"url": "http://127.0.0.1:9/x", "flow_ids": "echo"}', 422, "list"),
        (b'{"url": "http://127.0.0.1:9/x", "secret": "hunter2"}', 422, "secret"),
        (b'{"url": "http://127.0.0.1:9/x", "enabled": "yes"}', 422, "enabled"),
        (b'{"url": "http://127.0.0.1:9/x", "colour": "red"}', 422, "unknown field(s) colour"),
    ],
)
async def test_bad_endpoint_input_is_refused_and_nothing_stored(
    gateway: Any, settings: Settings, body: bytes, status: int, detail: str
) -> None:
    response = await gateway.post(
        "/api/v1/endpoints", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == status
    assert detail in (await response.json())["detail"]
    assert count_rows(settings, "endpoints") == 0


async def test_bad_patch_changes_nothing(gateway: Any, receiver: Receiver) -> None:
    endpoint = await (await gateway.post("/api/v1/endpoints", json={"url": receiver.url})).json()
    path = f"/api/v1/endpoints/{endpoint['endpoint_id']}"
    response = await gateway.patch(path, json={"description": "new", "url": "ftp://x"})
    assert response.status == 422
    assert (await (await gateway.get(path)).json())["description"] == ""
    assert (await gateway.patch("/api/v1/endpoints/not-a-uuid", json={})).status == 422


async def test_delivery_listing_validates_its_filters(gateway: Any) -> None:
    assert (await gateway.get("/api/v1/deliveries?status=lost")).status == 422
    assert (await gateway.get("/api/v1/deliveries?limit=0")).status == 422
    assert (await gateway.get("/api/v1/deliveries?limit=x")).status == 422
    assert (await gateway.get("/api/v1/deliveries/not-a-uuid")).status == 422
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await gateway.get(f"/api/v1/deliveries/{missing}")).status == 404
    assert (await gateway.post(f"/api/v1/deliveries/{missing}/retry")).status == 404


async def test_each_step_is_logged_with_ids_and_no_secret(gateway: Any, receiver: Receiver) -> None:
    with structlog.testing.capture_logs() as logs:
        created = await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
        secret = (await created.json())["secret"]
        response = await gateway.post("/api/v1/webhook/echo", json={"a": 1})
        run_id = (await response.json())["run_id"]
        await settled_delivery(gateway, run_id, "succeeded")
    events = {entry["event"]: entry for entry in logs}
    for name in ("trigger_received", "run_started", "run_completed", "delivery_attempted"):
        assert events[name]["run_id"] == run_id, name
    assert events["run_started"]["flow_id"] == "echo"
    assert "delivery_id" in events["delivery_attempted"]
    assert secret not in repr(logs)
