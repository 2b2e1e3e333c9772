"""Relaying webhooks: a forward flow, raw payloads with the sender's headers, filters and
transforms per endpoint, and what ``/inspect`` shows of them. Real receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
import standardwebhooks
from aiohttp.test_utils import TestServer

from gateway.settings import Settings
from gateway.testing import Received, Receiver, eventually
from tests.integration.helpers import count_rows, finished_run

PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo/app"},
        "head_commit": {"id": "4f2c", "message": "Fix the build"},
    },
    indent=2,  # GitHub pretty-prints: the bytes must arrive exactly so
).encode()
PULL_REQUEST = json.dumps(
    {"action": "opened", "number": 7, "repository": {"full_name": "octo/app"}}
).encode()
IS_PUSH = "headers.\"x-github-event\" == 'push'"
IS_PULL_REQUEST = "headers.\"x-github-event\" == 'pull_request'"


def github_headers(secret: str, body: bytes, event: str, delivery: str) -> dict[str, str]:
    """What GitHub sends: the event, a delivery id, the hook's id and the body's HMAC."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "4711",
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/abc123",
    }


async def send_github(
    gateway: Any, settings: Settings, body: bytes, event: str, delivery: str
) -> str:
    secret = settings.flows["github_push"].secret
    response = await gateway.post(
        "/api/v1/webhook/github_push",
        data=body,
        headers=github_headers(secret, body, event, delivery),
    )
    assert response.status == 202, await response.text()
    run_id: str = (await response.json())["run_id"]
    return run_id


async def new_receiver(aiohttp_server: Callable[..., Any], path: str) -> Receiver:
    recorder = Receiver()
    server: TestServer = await aiohttp_server(recorder.app(), host="127.0.0.1")
    recorder.url = str(server.make_url(path))
    return recorder


async def register(gateway: Any, **fields: Any) -> dict[str, Any]:
    response = await gateway.post("/api/v1/endpoints", json=fields)
    assert response.status == 201, await response.text()
    endpoint: dict[str, Any] = await response.json()
    return endpoint


def verified(endpoint: dict[str, Any], received: Received) -> Any:
    """Standard Webhooks verification over the exact bytes received, with the endpoint's secret."""
    return standardwebhooks.Webhook(endpoint["secret"]).verify(received.body, received.headers)


async def settled(gateway: Any, run_id: str, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = await (
            await gateway.get(f"/api/v1/deliveries?run_id={run_id}")
        ).json()
        done = [d for d in found if d["status"] != "pending"]
        return found if len(found) == count and len(done) == count else None

    result: list[dict[str, Any]] = await eventually(check)
    return result


async def test_a_verified_github_push_is_relayed_raw_filtered_and_transformed(
    gateway: Any, settings: Settings, aiohttp_server: Callable[..., Any]
) -> None:
    raw_push = await new_receiver(aiohttp_server, "/push")
    shaped = await new_receiver(aiohttp_server, "/chat")
    raw_pr = await new_receiver(aiohttp_server, "/pr")
    pushes = await register(
        gateway, url=raw_push.url, payload="raw", filter=IS_PUSH, flow_ids=["github_push"]
    )
    chat = await register(
        gateway,
        url=shaped.url,
        flow_ids=["github_push"],
        transform={
            "jmespath": "{repo: values.body.repository.full_name,"
            ' event: values.headers."x-github-event", number: values.body.number}'
        },
    )
    reviews = await register(
        gateway, url=raw_pr.url, payload="raw", filter=IS_PULL_REQUEST, flow_ids=["github_push"]
    )

    push_run = await send_github(gateway, settings, PUSH, "push", "d-1")
    pr_run = await send_github(gateway, settings, PULL_REQUEST, "pull_request", "d-2")
    await settled(gateway, push_run, 2)
    await settled(gateway, pr_run, 2)

    [push] = raw_push.received
    assert push.body == PUSH, "the body arrives byte for byte"
    assert push.headers["content-type"] == "application/json"
    assert (push.headers["x-github-event"], push.headers["x-github-delivery"]) == ("push", "d-1")
    assert push.headers["x-github-hook-id"] == "4711"
    assert "x-hub-signature-256" not in push.headers, "the sender's signature stays behind"
    assert verified(pushes, push)["ref"] == "refs/heads/main"

    assert [json.loads(r.body) for r in shaped.received] in (
        [
            {"repo": "octo/app", "event": "push", "number": None},
            {"repo": "octo/app", "event": "pull_request", "number": 7},
        ],
        [
            {"repo": "octo/app", "event": "pull_request", "number": 7},
            {"repo": "octo/app", "event": "push", "number": None},
        ],
    )
    for received in shaped.received:
        assert received.headers["content-type"] == "application/json"
        verified(chat, received)

    [pr] = raw_pr.received
    assert pr.body == PULL_REQUEST
    assert pr.headers["x-github-event"] == "pull_request"
    verified(reviews, pr)

    run = await finished_run(gateway, push_run)
    assert run["values"]["headers"]["x-github-event"] == "push", "a forward run's output"
    assert run["values"]["body"]["head_commit"]["message"] == "Fix the build"


async def test_a_filtered_endpoint_shows_on_the_trigger_in_inspect(
    gateway: Any, settings: Settings, receiver: Receiver
) -> None:
    endpoint = await register(
        gateway, url=receiver.url, payload="raw", filter=IS_PULL_REQUEST, description="reviews"
    )
    run_id = await send_github(gateway, settings, PUSH, "push", "d-9")
    run = await finished_run(gateway, run_id)
    assert await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json() == []
    page = await (await gateway.get(f"/inspect/triggers/{run['metadata']['trigger_id']}")).text()
    assert "filtered" in page
    assert endpoint["endpoint_id"] in page
    assert "did not match" in page
    assert receiver.received == []


async def test_a_jinja_template_reshapes_the_payload_with_the_senders_headers(
    gateway: Any, settings: Settings, receiver: Receiver
) -> None:
    template = (
        '{"text": {{ ("[" ~ payload.repository.full_name ~ "] " ~ headers["x-github-event"]'
        ' ~ ": " ~ payload.head_commit.message) | tojson }}}'
    )
    endpoint = await register(
        gateway, url=receiver.url, payload="raw", transform={"jinja": template}
    )
    run_id = await send_github(gateway, settings, PUSH, "push", "d-3")
    [delivery] = await settled(gateway, run_id, 1)
    assert delivery["status"] == "succeeded"
    [received] = receiver.received
    assert json.loads(received.body) == {"text": "[octo/app] push: Fix the build"}
    assert received.headers["x-github-event"] == "push"
    verified(endpoint, received)

    detail = await (await gateway.get(f"/api/v1/deliveries/{delivery['delivery_id']}")).json()
    assert detail["payload"]["head_commit"]["id"] == "4f2c", "stored before the transform"
    page = await (await gateway.get(f"/inspect/deliveries/{delivery['delivery_id']}")).text()
    assert "Before the transform" in page
    assert "After the transform" in page
    assert "[octo/app] push: Fix the build" in page


@pytest.mark.parametrize(
    ("transform", "error"),
    [
        ({"jmespath": "length(head_commit.id.x)"}, "transform: In function length()"),
        ({"jinja": "{{ payload.nothing_here }}"}, "has no attribute 'nothing_here'"),
        ({"jinja": "{{ 'x' * 3 }}"}, "the template's output is not JSON"),
        ({"jinja": '{{ "x"|center(2 * 10**9) }}'}, "MB"),
    ],
)
async def test_a_transform_that_fails_fails_its_delivery_with_the_error(
    gateway: Any,
    settings: Settings,
    receiver: Receiver,
    transform: dict[str, str],
    error: str,
) -> None:
    await register(gateway, url=receiver.url, payload="raw", transform=transform)
    run_id = await send_github(gateway, settings, PUSH, "push", "d-4")
    [delivery] = await settled(gateway, run_id, 1)
    assert delivery["status"] == "failed"
    assert error in delivery["last_error"]
    detail = await (await gateway.get(f"/api/v1/deliveries/{delivery['delivery_id']}")).json()
    [attempt] = detail["attempt_log"]
    assert attempt["status_code"] is None
    assert error in attempt["error"]
    assert receiver.received == []
    assert (await gateway.get("/healthz")).status == 200


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"filter": 'headers."x-github-event" == '}, "filter: Invalid jmespath expression"),
        ({"filter": "(" * 3000}, "filter: longer than"),
        ({"transform": {"jinja": "{% for x in y %}"}}, "transform: line 1: Unexpected end"),
        ({"transform": {"jmespath": "a.["}}, "transform: "),
        ({"transform": {"python": "x"}}, "transform: expected {<language>"),
        ({"transform": 5}, "transform: expected a JMESPath string"),
        ({"forward_headers": ["X-Hub-Signature-256"]}, "is never forwarded"),
        ({"forward_headers": ["Stripe-Signature"]}, "is never forwarded"),
        ({"forward_headers": ["Authorization"]}, "is never forwarded"),
        ({"forward_headers": ["Content-Length"]}, "set by hookgate"),
        ({"forward_headers": ["webhook-id"]}, "set by hookgate"),
        ({"forward_headers": ["bad header"]}, "not a header name"),
        ({"payload": "body"}, "payload: expected one of run, raw"),
        ({"mode": "poll"}, "mode: expected one of push, pull"),
    ],
)
async def test_bad_relay_fields_are_refused_with_the_reason_and_nothing_stored(
    gateway: Any, settings: Settings, receiver: Receiver, fields: dict[str, Any], detail: str
) -> None:
    response = await gateway.post("/api/v1/endpoints", json={"url": receiver.url, **fields})
    assert response.status == 422
    assert detail in (await response.json())["detail"]
    assert count_rows(settings, "endpoints") == 0


async def test_relay_fields_can_be_changed_and_cleared(gateway: Any, receiver: Receiver) -> None:
    endpoint = await register(gateway, url=receiver.url, filter=IS_PUSH, transform="@")
    assert (endpoint["filter"], endpoint["transform"]) == (IS_PUSH, {"jmespath": "@"})
    assert endpoint["forward_headers"] is None
    url = f"/api/v1/endpoints/{endpoint['endpoint_id']}"
    changed = await (
        await gateway.patch(
            url, json={"filter": None, "transform": None, "payload": "raw", "forward_headers": []}
        )
    ).json()
    assert (changed["filter"], changed["transform"], changed["payload"]) == (None, None, "raw")
    assert changed["forward_headers"] == []
    refused = await gateway.patch(url, json={"mode": "pull"})
    assert refused.status == 422
    assert "keeps the mode" in (await refused.json())["detail"]
