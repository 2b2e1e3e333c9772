"""The consumer API of pull endpoints over HTTP: long-poll, acknowledge, retry with the same
``webhook-id``; bad input refused with a reason and nothing changed."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import pytest
import standardwebhooks

from gateway import keys
from gateway.settings import Settings
from gateway.testing import eventually
from tests.integration.helpers import count_rows, finished_run, query_rows


async def pull_endpoint(gateway: Any, **fields: Any) -> dict[str, Any]:
    response = await gateway.post("/api/v1/endpoints", json={"mode": "pull", **fields})
    assert response.status == 201, await response.text()
    endpoint: dict[str, Any] = await response.json()
    return endpoint


async def trigger(gateway: Any, value: Any) -> str:
    response = await gateway.post("/api/v1/webhook/echo", json=value)
    assert response.status == 202
    run_id: str = (await response.json())["run_id"]
    await finished_run(gateway, run_id)
    return run_id


async def pull(gateway: Any, endpoint_id: str, query: str = "") -> list[dict[str, Any]]:
    response = await gateway.post(f"/api/v1/endpoints/{endpoint_id}/pull{query}")
    assert response.status == 200, await response.text()
    deliveries: list[dict[str, Any]] = (await response.json())["deliveries"]
    return deliveries


async def ack(gateway: Any, item: dict[str, Any], **result: Any) -> Any:
    return await gateway.post(
        f"/api/v1/deliveries/{item['delivery_id']}/ack",
        json={"attempt": item["attempt"], **result},
    )


async def test_a_pulled_delivery_is_signed_acknowledged_and_retried_under_its_id(
    gateway: Any,
) -> None:
    endpoint = await pull_endpoint(gateway)
    assert endpoint["url"] is None
    run_id = await trigger(gateway, {"n": 1})
    [item] = await pull(gateway, endpoint["endpoint_id"], "?lease=30")
    assert (item["run_id"], item["attempt"], item["event_type"]) == (run_id, 1, "run.success")
    payload = standardwebhooks.Webhook(endpoint["secret"]).verify(
        item["body"].encode(), item["headers"]
    )
    assert payload["values"] == {"n": 1}
    assert item["headers"]["webhook-id"] == item["delivery_id"]
    assert await pull(gateway, endpoint["endpoint_id"]) == [], "leased to the first consumer"

    refused = await ack(gateway, item, status_code=503, duration_ms=12.5, response_body="busy")
    assert refused.status == 200
    assert (await refused.json())["status"] == "pending"
    again = await eventually(lambda: pull(gateway, endpoint["endpoint_id"]))
    assert [(a["delivery_id"], a["attempt"]) for a in again] == [(item["delivery_id"], 2)]
    stale = await ack(gateway, item, status_code=200)
    assert stale.status == 409
    assert "no longer current" in (await stale.json())["detail"]
    done = await ack(gateway, again[0], status_code=204, duration_ms=3)
    assert (await done.json())["status"] == "succeeded"
    repeated = await ack(gateway, again[0], status_code=204, duration_ms=3)
    assert repeated.status == 200, "an acknowledgement sent twice is recorded once"

    detail = await (await gateway.get(f"/api/v1/deliveries/{item['delivery_id']}")).json()
    assert [(a["attempt"], a["status_code"]) for a in detail["attempt_log"]] == [
        (1, 503),
        (2, 204),
    ]
    assert detail["attempt_log"][0]["response_body"] == "busy"


async def test_a_waiting_consumer_gets_a_new_delivery_at_once(gateway: Any) -> None:
    endpoint = await pull_endpoint(gateway)
    waiting = asyncio.create_task(pull(gateway, endpoint["endpoint_id"], "?wait=20"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = asyncio.get_running_loop().time()
    await trigger(gateway, {"n": 2})
    [item] = await asyncio.wait_for(waiting, 10)
    assert json.loads(item["body"])["values"] == {"n": 2}
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_pull_endpoints_transform_and_raw_payload_apply_to_what_is_pulled(
    gateway: Any,
) -> None:
    endpoint = await pull_endpoint(
        gateway, payload="raw", transform={"jinja": '{"twice": {{ payload.n * 2 }}}'}
    )
    await trigger(gateway, {"n": 21})
    [item] = await pull(gateway, endpoint["endpoint_id"])
    assert json.loads(item["body"]) == {"twice": 42}
    assert item["headers"]["Content-Type"] == "application/json"
    standardwebhooks.Webhook(endpoint["secret"]).verify(item["body"].encode(), item["headers"])


async def test_a_pulled_delivery_whose_transform_fails_is_failed_with_the_error(
    gateway: Any,
) -> None:
    endpoint = await pull_endpoint(
        gateway, payload="raw", transform={"jinja": '{"n": {{ payload.n.missing }}}'}
    )
    await trigger(gateway, {"n": 1})
    assert await pull(gateway, endpoint["endpoint_id"]) == []
    [delivery] = await (await gateway.get("/api/v1/deliveries")).json()
    assert delivery["status"] == "failed"
    assert "has no attribute 'missing'" in delivery["last_error"]
    detail = await (await gateway.get(f"/api/v1/deliveries/{delivery['delivery_id']}")).json()
    [attempt] = detail["attempt_log"]
    assert (attempt["attempt"], attempt["status_code"]) == (1, None)
    assert "has no attribute 'missing'" in attempt["error"]


async def test_a_paused_pull_endpoint_keeps_its_deliveries(gateway: Any) -> None:
    endpoint = await pull_endpoint(gateway)
    await gateway.post(f"/api/v1/endpoints/{endpoint['endpoint_id']}/pause")
    await trigger(gateway, {"n": 3})
    response = await gateway.post(f"/api/v1/endpoints/{endpoint['endpoint_id']}/pull")
    assert await response.json() == {"endpoint_state": "paused", "deliveries": []}
    await gateway.post(f"/api/v1/endpoints/{endpoint['endpoint_id']}/resume")
    assert len(await pull(gateway, endpoint["endpoint_id"])) == 1


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("?wait=61", "wait: expected 0 to 60 seconds"),
        ("?wait=soon", "wait: expected seconds"),
        ("?wait=nan", "wait: expected seconds"),
        ("?limit=0", "limit: expected 1 to 100"),
        ("?limit=1.5", "limit: expected an integer"),
        ("?lease=0.5", "lease: expected 1 to 900 seconds"),
    ],
)
async def test_bad_pull_parameters_are_refused(gateway: Any, query: str, detail: str) -> None:
    endpoint = await pull_endpoint(gateway)
    response = await gateway.post(f"/api/v1/endpoints/{endpoint['endpoint_id']}/pull{query}")
    assert response.status == 422
    assert detail in (await response.json())["detail"]


async def test_pulling_what_is_not_a_pull_endpoint_is_refused(gateway: Any, receiver: Any) -> None:
    pushed = await (await gateway.post("/api/v1/endpoints", json={"url": receiver.url})).json()
    response = await gateway.post(f"/api/v1/endpoints/{pushed['endpoint_id']}/pull")
    assert response.status == 409
    assert "push endpoint" in (await response.json())["detail"]
    missing = await gateway.post("/api/v1/endpoints/01a22f50-b816-7ec3-b442-689417ba911d/pull")
    assert missing.status == 404
    not_an_id = await gateway.post("/api/v1/endpoints/nope/pull")
    assert not_an_id.status == 422
    with_url = await gateway.post("/api/v1/endpoints", json={"mode": "pull", "url": receiver.url})
    assert with_url.status == 422


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"status_code": 200}, "attempt: required"),
        ({"attempt": 1}, "status_code or error: one is required"),
        ({"attempt": 1, "status_code": 99}, "status_code: expected 100 to 599"),
        ({"attempt": 1, "status_code": "200"}, "status_code: expected an integer"),
        ({"attempt": 1, "error": 5}, "error: expected str"),
        ({"attempt": 1, "status_code": 200, "duration_ms": -1}, "duration_ms: expected 0"),
        ({"attempt": 1, "status_code": 200, "response_headers": {"a": 1}}, "response_headers"),
        ({"attempt": True, "status_code": 200}, "attempt: expected an integer"),
    ],
)
async def test_bad_acknowledgements_are_refused_and_change_nothing(
    gateway: Any, settings: Settings, body: dict[str, Any], detail: str
) -> None:
    endpoint = await pull_endpoint(gateway)
    await trigger(gateway, {"n": 4})
    [item] = await pull(gateway, endpoint["endpoint_id"])
    response = await gateway.post(f"/api/v1/deliveries/{item['delivery_id']}/ack", json=body)
    assert response.status == 422
    assert detail in (await response.json())["detail"]
    assert query_rows(settings, "SELECT status, attempts FROM deliveries") == [("pending", 1)]
    assert count_rows(settings, "attempts") == 1


async def test_a_pushed_delivery_cannot_be_acknowledged(gateway: Any, receiver: Any) -> None:
    await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    run_id = await trigger(gateway, {"n": 5})
    await receiver.wait_for(1)
    [delivery] = await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json()
    response = await gateway.post(
        f"/api/v1/deliveries/{delivery['delivery_id']}/ack", json={"attempt": 1, "status_code": 200}
    )
    assert response.status == 409


async def test_a_refused_pull_is_retried_on_its_endpoints_own_schedule(gateway: Any) -> None:
    endpoint = await pull_endpoint(gateway, retry_schedule=[3600])
    await trigger(gateway, {"n": 7})
    [item] = await pull(gateway, endpoint["endpoint_id"], "?lease=30")
    refused = await ack(gateway, item, status_code=500)
    stored = await refused.json()
    assert stored["status"] == "pending"
    due = datetime.fromisoformat(stored["next_attempt_at"]).timestamp()
    assert due > time.time() + 3000, "the endpoint's hour, not the gateway's 0.05 s"


async def test_a_consumer_answering_410_disables_the_pull_endpoint_and_it_is_announced(
    gateway: Any, receiver: Any
) -> None:
    watcher = await gateway.post(
        "/api/v1/endpoints", json={"url": receiver.url, "event_types": ["endpoint.disabled"]}
    )
    assert watcher.status == 201
    endpoint = await pull_endpoint(gateway)
    await trigger(gateway, {"n": 9})
    [item] = await pull(gateway, endpoint["endpoint_id"])
    gone = await ack(gateway, item, status_code=410)
    assert (await gone.json())["status"] == "failed"
    state = await (await gateway.get(f"/api/v1/endpoints/{endpoint['endpoint_id']}")).json()
    assert state["state"] == "disabled"
    assert state["disabled_reason"] == "the receiver answered 410 Gone"
    [event] = await receiver.wait_for(1)
    body = json.loads(event.body)
    assert body["type"] == "endpoint.disabled"
    assert body["data"]["endpoint_id"] == endpoint["endpoint_id"]
    assert body["data"]["reason"] == "the receiver answered 410 Gone"


async def test_a_run_webhook_delivery_cannot_be_acknowledged(gateway: Any, receiver: Any) -> None:
    response = await gateway.post(
        "/api/v1/webhook/echo", params={"webhook": receiver.url}, json={"n": 8}
    )
    run_id = (await response.json())["run_id"]
    await receiver.wait_for(1)
    [delivery] = await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json()
    assert delivery["endpoint_id"] is None
    answer = await gateway.post(
        f"/api/v1/deliveries/{delivery['delivery_id']}/ack", json={"attempt": 1, "status_code": 200}
    )
    assert answer.status == 404
    assert (await answer.json())["detail"] == (
        f"Delivery {delivery['delivery_id']} not found, or not a pull endpoint's"
    )


async def test_inspect_shows_a_pull_endpoint_and_its_acknowledged_tries(gateway: Any) -> None:
    endpoint = await pull_endpoint(gateway, description="laptop", filter="body.n == `6`")
    await trigger(gateway, {"n": 6})
    [item] = await pull(gateway, endpoint["endpoint_id"])
    await ack(gateway, item, status_code=200, duration_ms=2)
    page = await gateway.get(f"/inspect/endpoints/{endpoint['endpoint_id']}")
    assert page.status == 200
    text = await page.text()
    assert f"hookgate listen {endpoint['endpoint_id']}" in text
    assert "body.n == `6`" in text
    delivery_page = await (await gateway.get(f"/inspect/deliveries/{item['delivery_id']}")).text()
    assert "succeeded" in delivery_page


async def test_a_consumer_that_hangs_up_while_waiting_takes_nothing(gateway: Any) -> None:
    """``hookgate serve`` does not cancel a handler whose client hung up (aiohttp's default):
    the long-poll itself must notice, or the deliveries it takes stay leased to nobody."""
    endpoint = await pull_endpoint(gateway)
    hung_up = asyncio.Event()
    service = gateway.app[keys.pull_key]
    waiting = asyncio.create_task(
        service.pull(
            endpoint["endpoint_id"], limit=10, wait=20, lease_seconds=60, gone=hung_up.is_set
        )
    )
    await asyncio.sleep(0.2)
    hung_up.set()
    await trigger(gateway, {"n": 7})
    assert await asyncio.wait_for(waiting, 10) == ("active", [])
    [item] = await pull(gateway, endpoint["endpoint_id"])
    assert item["attempt"] == 1, "no try was started for the consumer that left"
