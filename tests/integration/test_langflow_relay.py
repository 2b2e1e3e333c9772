"""The upstream relay flow against a real aiohttp server on 127.0.0.1 standing in for an
engine: success, 5xx then success (retried), 4xx (not retried), upstream down (run ``error``,
delivered as such), and a Langflow upstream answering through hookgate's ``/run``."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.testing import Receiver, Reply
from tests.integration.helpers import finished_run, settled_delivery


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Any]) -> Receiver:
    engine = Receiver()
    server = await aiohttp_server(engine.app(), host="127.0.0.1")
    engine.url = str(server.make_url("/api/v1/run/remote-flow"))
    return engine


async def relay_gateway(
    aiohttp_client: Callable[..., Any], settings: Settings, url: str, **options: Any
) -> TestClient[Any, Any]:
    relay = FlowSettings(
        kind="relay",
        url=url,
        headers={"X-Team": "docs"},
        api_key="upstream-key",
        timeout=5,
        **options,
    )
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings.replace(flows={**settings.flows, "upstream": relay}))
    )
    return client


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/runs/wait"


async def test_relay_success_output_is_the_upstream_answer_and_is_delivered(
    aiohttp_client: Callable[..., Any], settings: Settings, upstream: Receiver, receiver: Receiver
) -> None:
    upstream.script(Reply(200, body='{"answer": 42}'))
    gateway = await relay_gateway(aiohttp_client, settings, upstream.url)
    await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    response = await gateway.post("/api/v1/webhook/upstream", json={"question": "life"})
    run_id = (await response.json())["run_id"]
    run = await finished_run(gateway, run_id)
    assert (run["status"], run["values"]) == ("success", {"answer": 42})
    [call] = upstream.received
    assert (call.method, call.path_qs) == ("POST", "/api/v1/run/remote-flow")
    assert json.loads(call.body) == {"question": "life"}
    assert call.headers["x-api-key"] == "upstream-key"
    assert call.headers["x-team"] == "docs"
    assert call.headers["content-type"] == "application/json"
    [callback] = await receiver.wait_for(1)
    assert json.loads(callback.body)["values"] == {"answer": 42}


async def test_upstream_5xx_then_success_is_retried(
    aiohttp_client: Callable[..., Any], settings: Settings, upstream: Receiver
) -> None:
    upstream.script(503, Reply(502), Reply(200, body='{"ok": true}'))
    gateway = await relay_gateway(aiohttp_client, settings, upstream.url)
    response = await gateway.post("/api/v1/webhook/upstream", json={"n": 1})
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert (run["status"], run["values"]) == ("success", {"ok": True})
    assert len(upstream.received) == 3
    assert all(json.loads(r.body) == {"n": 1} for r in upstream.received)


async def test_upstream_failing_every_attempt_ends_in_error_after_the_bound(
    aiohttp_client: Callable[..., Any], settings: Settings, upstream: Receiver
) -> None:
    upstream.script(500, 500, 500, 500)
    gateway = await relay_gateway(aiohttp_client, settings, upstream.url, retries=2)
    response = await gateway.post("/api/v1/webhook/upstream", json={})
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert run["status"] == "error"
    assert run["error"]["error"] == "RelayError"
    assert "answered 500" in run["error"]["message"]
    assert len(upstream.received) == 2


async def test_upstream_4xx_is_not_retried(
    aiohttp_client: Callable[..., Any], settings: Settings, upstream: Receiver
) -> None:
    upstream.script(Reply(404, body='{"detail": "Flow identifier x not found"}'))
    gateway = await relay_gateway(aiohttp_client, settings, upstream.url)
    response = await gateway.post("/api/v1/webhook/upstream", json={})
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert run["status"] == "error"
    assert "answered 404" in run["error"]["message"]
    assert "Flow identifier x not found" in run["error"]["message"]
    assert len(upstream.received) == 1


async def test_upstream_down_ends_in_error_and_is_delivered_as_such(
    aiohttp_client: Callable[..., Any], settings: Settings, receiver: Receiver
) -> None:
    gateway = await relay_gateway(aiohttp_client, settings, closed_port_url())
    response = await gateway.post(f"/api/v1/webhook/upstream?webhook={receiver.url}", json={})
    run_id = (await response.json())["run_id"]
    run = await finished_run(gateway, run_id)
    assert run["status"] == "error"
    assert "unreachable" in run["error"]["message"]
    [callback] = await receiver.wait_for(1)
    payload = json.loads(callback.body)
    assert (payload["run_id"], payload["status"]) == (run_id, "error")
    assert "unreachable" in payload["error"]["message"]
    delivery = await settled_delivery(gateway, run_id, "succeeded")
    assert delivery["event_type"] == "run.error"


async def test_body_template_and_langflow_answer_through_run(
    aiohttp_client: Callable[..., Any], settings: Settings, upstream: Receiver
) -> None:
    langflow_answer = {
        "session_id": "s",
        "outputs": [
            {"inputs": {}, "outputs": [{"results": {"message": {"text": "from upstream"}}}]}
        ],
    }
    upstream.script(Reply(200, body=json.dumps(langflow_answer)))
    gateway = await relay_gateway(
        aiohttp_client,
        settings,
        upstream.url,
        body={"assistant_id": "agent", "input": "$input", "tags": ["$input"]},
    )
    response = await gateway.post("/api/v1/run/upstream", json={"input_value": "hello"})
    assert response.status == 200
    answer = await response.json()
    assert answer["outputs"][0]["outputs"][0]["results"]["message"]["text"] == "from upstream"
    [call] = upstream.received
    assert json.loads(call.body) == {
        "assistant_id": "agent",
        "input": {"input_value": "hello"},
        "tags": [{"input_value": "hello"}],
    }
