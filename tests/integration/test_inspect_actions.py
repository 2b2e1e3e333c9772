"""Every /inspect action, pressed as a browser presses it: the form is read from the page it
sits on, posted with that page's CSRF token, and followed to the page it redirects to. What
each one did is checked where users see it: the JSON API and the receiver."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import standardwebhooks
from aiohttp import web
from aiohttp.test_utils import TestClient
from markupsafe import escape

from gateway.settings import Settings
from gateway.testing import Receiver, eventually
from tests.integration.helpers import finished_run, settled_delivery
from tests.integration.test_inspect import csrf_of, page
from tests.integration.test_relay import IS_PUSH, PULL_REQUEST, PUSH, send_github

Client = TestClient[web.Request, web.Application]
Form = dict[str, str] | list[tuple[str, str]]


async def press(
    client: Client, on_page: str, action: str, form: Form | None = None
) -> tuple[str, dict[str, str]]:
    """Submit the form whose ``action`` is on ``on_page``; the redirect's path and its notice
    or problem."""
    html = await page(client, on_page)
    assert f'action="{action}"' in html, f"no form for {action} on {on_page}"
    fields = list(form.items()) if isinstance(form, dict) else list(form or [])
    response = await client.post(
        action, data=[*fields, ("csrf_token", csrf_of(html))], allow_redirects=False
    )
    assert response.status == 303, await response.text()
    location = urlsplit(response.headers["Location"])
    said = {key: values[0] for key, values in parse_qs(location.query).items()}
    shown = await page(client, response.headers["Location"])
    for text in said.values():
        assert text.split(":")[0] in shown, "the page shows the notice"
    return location.path, said


async def api_endpoint(client: Client, endpoint_id: str, status: int = 200) -> dict[str, Any]:
    response = await client.get(f"/api/v1/endpoints/{endpoint_id}")
    assert response.status == status
    body: dict[str, Any] = await response.json()
    return body


async def copied_secret(client: Client, endpoint_id: str) -> str:
    """What the Copy secret button fetches."""
    html = await page(client, f"/inspect/endpoints/{endpoint_id}")
    response = await client.post(
        f"/inspect/endpoints/{endpoint_id}/secret", headers={"X-CSRF-Token": csrf_of(html)}
    )
    secret: str = (await response.json())["secret"]
    return secret


async def trigger(client: Client, flow: str = "echo") -> str:
    response = await client.post(f"/api/v1/webhook/{flow}", json={"n": 1})
    run_id: str = (await response.json())["run_id"]
    return run_id


async def created(client: Client, url: str) -> str:
    path, said = await press(client, "/inspect/endpoints", "/inspect/endpoints", {"url": url})
    assert said == {
        "notice": "Endpoint created. Its signing secret is masked here: use Copy secret."
    }
    return path.rsplit("/", 1)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_create_an_endpoint_with_filters(gateway: Client, receiver: Receiver) -> None:
    path, said = await press(
        gateway,
        "/inspect/endpoints",
        "/inspect/endpoints",
        [
            ("url", receiver.url),
            ("description", "orders"),
            ("flow_ids", "echo"),
            ("flow_ids", "no-such-flow"),
            ("event_types", "run.success"),
            ("event_types", "run.nonsense"),
        ],
    )
    endpoint_id = path.removeprefix("/inspect/endpoints/")
    assert "Copy secret" in said["notice"]
    stored = await api_endpoint(gateway, endpoint_id)
    assert (stored["url"], stored["description"]) == (receiver.url, "orders")
    assert (stored["flow_ids"], stored["event_types"]) == (["echo"], ["run.success"])
    secret = await copied_secret(gateway, endpoint_id)
    assert secret not in await page(gateway, f"/inspect/endpoints/{endpoint_id}")

    await finished_run(gateway, await trigger(gateway, "agent"))  # filtered out
    await settled_delivery(gateway, await trigger(gateway), "succeeded")
    [call] = receiver.received
    standardwebhooks.Webhook(secret).verify(call.body, call.headers)
    assert json.loads(call.body)["flow_id"] == "echo"


async def test_a_refused_url_is_shown_and_nothing_is_stored(gateway: Client) -> None:
    path, said = await press(
        gateway, "/inspect/endpoints", "/inspect/endpoints", {"url": "http://169.254.169.254/x"}
    )
    assert path == "/inspect/endpoints"
    assert "cloud metadata" in said["problem"]
    assert await (await gateway.get("/api/v1/endpoints")).json() == []


async def test_edit_an_endpoint(gateway: Client, receiver: Receiver) -> None:
    endpoint_id = await created(gateway, receiver.url)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    _, said = await press(
        gateway,
        on_page,
        on_page,
        [("url", receiver.url + "/v2"), ("description", "v2"), ("flow_ids", "agent")],
    )
    assert said == {"notice": "Saved"}
    stored = await api_endpoint(gateway, endpoint_id)
    assert (stored["url"], stored["description"]) == (receiver.url + "/v2", "v2")
    assert (stored["flow_ids"], stored["event_types"]) == (["agent"], [])

    _, said = await press(gateway, on_page, on_page, {"url": "ftp://example.com/"})
    assert "problem" in said
    assert (await api_endpoint(gateway, endpoint_id))["url"] == receiver.url + "/v2"
    missing = "/inspect/endpoints/00000000-0000-0000-0000-000000000000"
    html = await page(gateway, on_page)
    response = await gateway.post(missing, data={"url": receiver.url, "csrf_token": csrf_of(html)})
    assert response.status == 404


async def test_pause_holds_deliveries_and_resume_sends_them(
    gateway: Client, receiver: Receiver
) -> None:
    endpoint_id = await created(gateway, receiver.url)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    _, said = await press(gateway, on_page, f"{on_page}/pause")
    assert said["notice"].startswith("Paused")
    assert (await api_endpoint(gateway, endpoint_id))["state"] == "paused"
    run_id = await trigger(gateway)
    await finished_run(gateway, run_id)
    assert (await settled_delivery(gateway, run_id, "pending"))["attempts"] == 0
    assert receiver.received == []

    _, said = await press(gateway, on_page, f"{on_page}/resume")
    assert said == {"notice": "Resumed"}
    assert (await api_endpoint(gateway, endpoint_id))["state"] == "active"
    await settled_delivery(gateway, run_id, "succeeded")


async def test_rotate_signs_with_both_secrets(gateway: Client, receiver: Receiver) -> None:
    endpoint_id = await created(gateway, receiver.url)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    old = await copied_secret(gateway, endpoint_id)
    _, said = await press(gateway, on_page, f"{on_page}/rotate")
    assert said["notice"] == "New secret; the old one keeps signing too for 24 h"
    new = await copied_secret(gateway, endpoint_id)
    assert new != old
    assert (await api_endpoint(gateway, endpoint_id))["previous_secret_expires_at"]
    assert "the previous one still signs too" in await page(gateway, on_page)
    await settled_delivery(gateway, await trigger(gateway), "succeeded")
    [call] = receiver.received
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(call.body, call.headers)


async def test_a_test_event_reaches_the_endpoint_and_replays(
    gateway: Client, receiver: Receiver
) -> None:
    endpoint_id = await created(gateway, receiver.url)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    path, said = await press(gateway, on_page, f"{on_page}/test")
    assert said == {"notice": "Test event queued"}
    delivery_id = path.removeprefix("/inspect/deliveries/")
    [call] = await receiver.wait_for(1)
    assert call.headers["webhook-id"] == delivery_id
    event = standardwebhooks.Webhook(await copied_secret(gateway, endpoint_id)).verify(
        call.body, call.headers
    )
    assert event["type"] == "hookgate.test"
    assert event["data"]["endpoint_id"] == endpoint_id

    _, said = await press(gateway, path, f"{path}/replay")
    assert said["notice"].startswith("Replaying 1 delivery,")
    _, again = await receiver.wait_for(2)
    assert (again.headers["webhook-id"], again.body) == (delivery_id, call.body)


async def test_replay_failed_sends_the_dead_letters_again(
    gateway: Client, aiohttp_server: Callable[..., Any]
) -> None:
    port = free_port()
    endpoint_id = await created(gateway, f"http://127.0.0.1:{port}/hook")
    await gateway.patch(f"/api/v1/endpoints/{endpoint_id}", json={"retry_schedule": [0.01]})
    dead = await settled_delivery(gateway, await trigger(gateway), "failed")
    receiver = Receiver()
    await aiohttp_server(receiver.app(), host="127.0.0.1", port=port)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    _, said = await press(gateway, on_page, f"{on_page}/recover")
    assert said == {"notice": "Replaying 1 failed deliveries"}
    [call] = await receiver.wait_for(1)
    assert call.headers["webhook-id"] == dead["delivery_id"]


async def test_delete_an_endpoint(gateway: Client, receiver: Receiver) -> None:
    endpoint_id = await created(gateway, receiver.url)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    path, said = await press(gateway, on_page, f"{on_page}/delete")
    assert (path, said) == ("/inspect/endpoints", {"notice": "Endpoint deleted"})
    await api_endpoint(gateway, endpoint_id, status=404)
    await page(gateway, on_page, status=404)


async def test_retry_and_replay_a_delivery_and_redeliver_a_run(
    gateway: Client, receiver: Receiver
) -> None:
    await created(gateway, receiver.url)
    await created(gateway, receiver.url + "/second")
    run_id = await trigger(gateway)
    await receiver.wait_for(2)
    [first, second] = await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json()
    ids = {first["delivery_id"], second["delivery_id"]}
    on_page = f"/inspect/deliveries/{first['delivery_id']}"
    await settled_delivery_all(gateway, run_id)

    _, said = await press(gateway, on_page, f"{on_page}/retry")
    assert said == {"notice": "Retry requested: it is being sent now"}
    calls = await receiver.wait_for(3)
    assert calls[2].headers["webhook-id"] == first["delivery_id"]

    await settled_delivery_all(gateway, run_id)
    _, said = await press(gateway, on_page, f"{on_page}/replay")
    assert said["notice"].startswith("Replaying 2 deliveries,")
    calls = await receiver.wait_for(5)
    assert {c.headers["webhook-id"] for c in calls[3:5]} == ids

    await settled_delivery_all(gateway, run_id)
    run_page = f"/inspect/runs/{run_id}"
    _, said = await press(gateway, run_page, f"{run_page}/redeliver")
    assert said == {"notice": "Replaying 2 deliveries of this run"}
    calls = await receiver.wait_for(7)
    assert {c.headers["webhook-id"] for c in calls[5:7]} == ids


async def settled_delivery_all(gateway: Client, run_id: str) -> None:
    async def done() -> bool:
        found = await (await gateway.get(f"/api/v1/deliveries?run_id={run_id}")).json()
        return all(d["status"] == "succeeded" for d in found)

    await eventually(done)


@pytest.mark.parametrize("action", ["pause", "resume", "rotate", "test", "recover", "delete"])
async def test_an_action_without_the_csrf_token_changes_nothing(
    gateway: Client, receiver: Receiver, action: str
) -> None:
    endpoint_id = await created(gateway, receiver.url)
    before = await api_endpoint(gateway, endpoint_id)
    refused = await gateway.post(f"/inspect/endpoints/{endpoint_id}/{action}")
    assert refused.status == 403
    forged = await gateway.post(
        f"/inspect/endpoints/{endpoint_id}/{action}", data={"csrf_token": "forged"}
    )
    assert forged.status == 403
    assert await api_endpoint(gateway, endpoint_id) == before
    assert await (await gateway.get("/api/v1/deliveries")).json() == []


async def test_actions_on_an_unknown_endpoint_or_delivery_are_404(gateway: Client) -> None:
    token = csrf_of(await page(gateway, "/inspect/endpoints"))
    missing = "00000000-0000-0000-0000-000000000000"
    for path in (
        f"/inspect/endpoints/{missing}/pause",
        f"/inspect/endpoints/{missing}/secret",
        f"/inspect/deliveries/{missing}/retry",
        f"/inspect/deliveries/{missing}/replay",
    ):
        response = await gateway.post(path, data={"csrf_token": token})
        assert response.status == 404, path


async def test_relay_fields_set_in_the_form_shape_what_is_sent(
    gateway: Client, settings: Settings, receiver: Receiver
) -> None:
    path, _ = await press(
        gateway,
        "/inspect/endpoints",
        "/inspect/endpoints",
        [
            ("url", receiver.url),
            ("flow_ids", "github_push"),
            ("payload", "raw"),
            ("forward_headers", "X-GitHub-Event, X-GitHub-Delivery"),
            ("filter", IS_PUSH),
            ("transform_language", "jmespath"),
            ("transform", "{ref: ref, repo: repository.full_name}"),
        ],
    )
    endpoint_id = path.removeprefix("/inspect/endpoints/")
    stored = await api_endpoint(gateway, endpoint_id)
    assert stored["payload"] == "raw"
    assert stored["forward_headers"] == ["X-GitHub-Event", "X-GitHub-Delivery"]
    assert (stored["filter"], stored["transform"]) == (
        IS_PUSH,
        {"jmespath": "{ref: ref, repo: repository.full_name}"},
    )
    html = await page(gateway, path)
    assert f'name="filter" class="mono" value="{escape(IS_PUSH)}"' in html, "the form shows it"

    turned_away = await send_github(gateway, settings, PULL_REQUEST, "pull_request", "d-1")
    sent = await send_github(gateway, settings, PUSH, "push", "d-2")
    await settled_delivery(gateway, sent, "succeeded")
    await finished_run(gateway, turned_away)
    [call] = receiver.received
    assert json.loads(call.body) == {"ref": "refs/heads/main", "repo": "octo/app"}
    assert (call.headers["x-github-event"], call.headers["x-github-delivery"]) == ("push", "d-2")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ([("filter", "headers.x == ")], "filter: Invalid jmespath expression"),
        ([("transform_language", "jinja"), ("transform", "{% for x in y %}")], "transform: line 1"),
        ([("transform_language", "python"), ("transform", "x")], "transform: expected"),
        ([("forward_headers", "Authorization")], "is never forwarded"),
        ([("payload", "body")], "payload: expected one of run, raw"),
    ],
)
async def test_bad_relay_fields_are_the_forms_problem_and_change_nothing(
    gateway: Client, receiver: Receiver, fields: list[tuple[str, str]], problem: str
) -> None:
    form = [("url", receiver.url), *fields]
    if "payload" not in dict(fields):  # the form's relay boxes come with its payload choice
        form.append(("payload", "run"))
    path, said = await press(gateway, "/inspect/endpoints", "/inspect/endpoints", form)
    assert path == "/inspect/endpoints"
    assert problem in said["problem"]
    assert await (await gateway.get("/api/v1/endpoints")).json() == []

    endpoint_id = await created(gateway, receiver.url)
    before = await api_endpoint(gateway, endpoint_id)
    on_page = f"/inspect/endpoints/{endpoint_id}"
    path, said = await press(gateway, on_page, on_page, form)
    assert path == on_page
    assert problem in said["problem"]
    assert await api_endpoint(gateway, endpoint_id) == before


async def test_emptied_relay_boxes_clear_the_filter_and_transform(
    gateway: Client, receiver: Receiver
) -> None:
    response = await gateway.post(
        "/api/v1/endpoints",
        json={
            "url": receiver.url,
            "payload": "raw",
            "forward_headers": ["X-GitHub-Event"],
            "filter": IS_PUSH,
            "transform": {"jinja": '{"n": 1}'},
        },
    )
    endpoint_id = (await response.json())["endpoint_id"]
    on_page = f"/inspect/endpoints/{endpoint_id}"
    form = [("url", receiver.url), ("payload", "run"), ("forward_headers", "")]
    _, said = await press(gateway, on_page, on_page, [*form, ("filter", ""), ("transform", "")])
    assert said == {"notice": "Saved"}
    stored = await api_endpoint(gateway, endpoint_id)
    assert (stored["payload"], stored["forward_headers"]) == ("run", None)
    assert (stored["filter"], stored["transform"]) == (None, None)
