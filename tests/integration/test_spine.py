"""The spine end to end: a trigger in, a run, a signed callback out, over real HTTP."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import itsdangerous
import standardwebhooks

from gateway import signing
from gateway.testing import Receiver, eventually
from tests.integration.helpers import settled_delivery

SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="


async def run_of(gateway: Any, run_id: str) -> dict[str, Any]:
    response = await gateway.get(f"/api/v1/runs/{run_id}")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def finished(gateway: Any, run_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        run = await run_of(gateway, run_id)
        return run if run["status"] not in ("pending", "running") else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_trigger_runs_flow_and_delivers_signed_callback(
    gateway: Any, receiver: Receiver
) -> None:
    """The README's walk-through: register an endpoint, trigger echo, receive a verifiable callback."""
    created = await gateway.post("/api/v1/endpoints", json={"url": receiver.url + "?token=abc"})
    assert created.status == 201
    endpoint = await created.json()
    assert endpoint["secret"].startswith("whsec_")

    response = await gateway.post("/api/v1/webhook/echo", json={"hello": "world"})
    assert response.status == 202
    body = await response.json()
    assert body["message"] == "Task started in the background"
    assert body["status"] == "in progress"
    run_id = body["run_id"]
    assert response.headers["Location"] == f"/api/v1/runs/{run_id}"

    run = await finished(gateway, run_id)
    assert run["status"] == "success"
    assert run["values"] == {"hello": "world"}
    assert run["flow_id"] == "echo"

    [callback] = await receiver.wait_for(1)
    payload = standardwebhooks.Webhook(endpoint["secret"]).verify(callback.body, callback.headers)
    assert payload["run_id"] == run_id
    assert payload["status"] == "success"
    assert payload["values"] == {"hello": "world"}
    assert payload["flow_id"] == "echo"
    for key in ("run_started_at", "run_ended_at", "webhook_sent_at", "assistant_id", "kwargs"):
        assert key in payload

    assert callback.query["token"] == "abc"
    serializer = itsdangerous.URLSafeTimedSerializer(endpoint["secret"], salt="hookgate.callback")
    claims = serializer.loads(callback.query["hookgate_token"], max_age=60)
    assert claims == {
        "delivery_id": callback.headers["webhook-id"],
        "run_id": run_id,
        "body_sha256": hashlib.sha256(callback.body).hexdigest(),
    }

    delivery = await settled_delivery(gateway, run_id, "succeeded")
    assert delivery["delivery_id"] == callback.headers["webhook-id"]


async def test_per_trigger_webhook_is_signed_with_its_origins_secret(
    gateway: Any, receiver: Receiver
) -> None:
    response = await gateway.post(
        "/api/v1/webhook/agent", params={"webhook": receiver.url}, json={"topic": "ice cream"}
    )
    assert response.status == 202
    run_id = (await response.json())["run_id"]
    [callback] = await receiver.wait_for(1)
    secret = signing.callback_secret(SIGNING_SECRET, receiver.url)
    payload = standardwebhooks.Webhook(secret).verify(callback.body, callback.headers)
    assert payload["run_id"] == run_id
    assert payload["values"] == {
        "topic": "ice cream and cats",
        "joke": "This is a joke about ice cream and cats",
    }
    assert payload["kwargs"]["webhook"] == receiver.url
    serializer = itsdangerous.URLSafeTimedSerializer(secret, salt="hookgate.callback")
    assert serializer.loads(callback.query["hookgate_token"])["run_id"] == run_id


async def test_non_json_body_becomes_payload(gateway: Any) -> None:
    response = await gateway.post(
        "/webhook/echo",
        data=b"a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 202
    run = await finished(gateway, (await response.json())["run_id"])
    assert run["values"] == {"payload": "a=1&b=2"}


async def test_failing_flow_ends_in_error_and_is_delivered(
    gateway: Any, receiver: Receiver
) -> None:
    await gateway.post(
        "/api/v1/endpoints", json={"url": receiver.url, "event_types": ["run.error"]}
    )
    ok = await gateway.post("/api/v1/webhook/echo", json={})
    failed = await gateway.post("/api/v1/webhook/fail", json={"x": 1})
    run = await finished(gateway, (await failed.json())["run_id"])
    assert run["status"] == "error"
    assert run["error"]["error"] == "RuntimeError"
    await finished(gateway, (await ok.json())["run_id"])
    [callback] = await receiver.wait_for(1)
    assert json.loads(callback.body)["status"] == "error"
    assert json.loads(callback.body)["error"]["error"] == "RuntimeError"
