"""Endpoint policy over real sockets: 410, throttling, resets, circuit breaking, disabling,
pause and resume, isolation between endpoints, secret rotation and replay (rate limits and the
end of a rotation's overlap: test_delivery_clock)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

import standardwebhooks
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver, Reply
from tests.integration.helpers import finished_run, holding_receiver, settled_delivery


async def serve(aiohttp_server: Callable[..., Any], *replies: Reply | int) -> Receiver:
    receiver = Receiver(replies)
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))
    return receiver


async def gateway_with(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], **overrides: Any
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(make_settings(**overrides)))
    return client


async def endpoint(gateway: Any, url: str, **extra: Any) -> dict[str, Any]:
    response = await gateway.post("/api/v1/endpoints", json={"url": url, **extra})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def trigger(gateway: Any, flow: str = "echo", **body: Any) -> str:
    response = await gateway.post(f"/api/v1/webhook/{flow}", json=body)
    assert response.status == 202
    run_id: str = (await response.json())["run_id"]
    return run_id


async def endpoint_state(gateway: Any, endpoint_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await gateway.get(f"/api/v1/endpoints/{endpoint_id}")).json()
    return body


async def test_410_disables_the_endpoint_and_keeps_its_other_deliveries(
    gateway: Any, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = await serve(aiohttp_server, 410)
    hook = await endpoint(gateway, receiver.url)
    gone = await trigger(gateway)
    dead = await settled_delivery(gateway, gone, "failed")
    assert dead["attempts"] == 1, "410 is not retried"
    state = await endpoint_state(gateway, hook["endpoint_id"])
    assert state["state"] == "disabled"
    assert "410" in state["disabled_reason"]

    kept = await trigger(gateway, n=2)
    await finished_run(gateway, kept)
    [waiting] = await (await gateway.get(f"/api/v1/deliveries?run_id={kept}")).json()
    assert waiting["status"] == "pending"
    assert len(receiver.received) == 1, "nothing is sent to a disabled endpoint"

    resumed = await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/resume")
    assert (await resumed.json())["state"] == "active"
    await settled_delivery(gateway, kept, "succeeded")
    assert len(receiver.received) == 2


async def test_429_and_503_and_a_reset_are_retried(
    gateway: Any, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = await serve(
        aiohttp_server,
        Reply(429, headers=(("Retry-After", "1"),)),
        Reply(reset=True),
        Reply(reset=True),
        Reply(503, headers=(("Retry-After", "0"),)),
        200,
    )
    await endpoint(gateway, receiver.url, retry_schedule=[0.05, 0.05, 0.05, 0.05])
    run_id = await trigger(gateway)
    delivery = await settled_delivery(gateway, run_id, "succeeded")
    codes = [a["status_code"] for a in delivery["attempt_log"]]
    assert codes == [429, None, 503, 200], "a reset on a fresh connection is one failed try"
    assert "Disconnected" in delivery["attempt_log"][1]["error"]
    assert len(receiver.received) == 5


async def test_circuit_opens_after_consecutive_failures_and_holds_deliveries(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    gateway = await gateway_with(
        aiohttp_client,
        make_settings,
        circuit_failure_threshold=3,
        circuit_cooldown_seconds=3600,
    )
    receiver = await serve(aiohttp_server, *[500] * 20)
    watcher = await serve(aiohttp_server)
    hook = await endpoint(gateway, receiver.url, retry_schedule=[0.01] * 10, max_concurrency=1)
    subscriber = await endpoint(
        gateway, watcher.url, event_types=["endpoint.circuit_opened", "endpoint.recovered"]
    )
    runs = [await trigger(gateway, n=i) for i in range(3)]
    [event] = await watcher.wait_for(1)
    announced = standardwebhooks.Webhook(subscriber["secret"]).verify(event.body, event.headers)
    assert announced == {
        "type": "endpoint.circuit_opened",
        "timestamp": announced["timestamp"],
        "data": {
            "endpoint_id": hook["endpoint_id"],
            "url": receiver.url,
            "reason": "3 failures in a row",
        },
    }
    assert datetime.fromisoformat(announced["timestamp"]).tzinfo is not None
    assert b", " not in event.body, "compact JSON, as every payload"
    state = await endpoint_state(gateway, hook["endpoint_id"])
    assert state["state"] == "circuit_open"
    assert state["consecutive_failures"] == 3
    sent = len(receiver.received)
    assert sent == 3
    for run_id in runs:
        await finished_run(gateway, run_id)
    deliveries = await (
        await gateway.get(f"/api/v1/deliveries?endpoint_id={hook['endpoint_id']}")
    ).json()
    assert sum(d["attempts"] for d in deliveries) == 3, "held deliveries use up no attempt"
    assert all(d["status"] == "pending" for d in deliveries)

    receiver.script(200, 200, 200)
    await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/resume")
    for run_id in runs:
        await settled_delivery(gateway, run_id, "succeeded")


async def test_a_probe_goes_through_after_the_cool_down(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    gateway = await gateway_with(
        aiohttp_client, make_settings, circuit_failure_threshold=2, circuit_cooldown_seconds=0.3
    )
    receiver = await serve(aiohttp_server, 500, 500)
    watcher = await serve(aiohttp_server)
    hook = await endpoint(gateway, receiver.url, retry_schedule=[0.01] * 5)
    await endpoint(gateway, watcher.url, event_types=["endpoint.recovered"])
    run_id = await trigger(gateway)
    await settled_delivery(gateway, run_id, "succeeded")
    assert len(receiver.received) == 3
    [event] = await watcher.wait_for(1)
    assert json.loads(event.body)["type"] == "endpoint.recovered"
    assert (await endpoint_state(gateway, hook["endpoint_id"]))["state"] == "active"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_endpoint_failing_for_the_whole_span_is_disabled_and_announced(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    gateway = await gateway_with(aiohttp_client, make_settings, disable_after_seconds=0.2)
    watcher = await serve(aiohttp_server)
    await endpoint(gateway, watcher.url, event_types=["endpoint.disabled"])
    failing = await endpoint(
        gateway, f"http://127.0.0.1:{free_port()}/hook", retry_schedule=[0.15] * 5
    )
    await trigger(gateway)
    [event] = await watcher.wait_for(1)
    body = json.loads(event.body)
    assert body["type"] == "endpoint.disabled"
    assert body["data"]["endpoint_id"] == failing["endpoint_id"]
    state = await endpoint_state(gateway, failing["endpoint_id"])
    assert state["state"] == "disabled"
    assert "failing continuously" in state["disabled_reason"]


async def test_pause_keeps_deliveries_until_resume(gateway: Any, receiver: Receiver) -> None:
    hook = await endpoint(gateway, receiver.url)
    paused = await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/pause")
    assert (await paused.json())["state"] == "paused"
    runs = [await trigger(gateway, n=i) for i in range(3)]
    for run_id in runs:
        await finished_run(gateway, run_id)
    assert receiver.received == []
    await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/resume")
    await receiver.wait_for(3)
    for run_id in runs:
        delivery = await settled_delivery(gateway, run_id, "succeeded")
        assert delivery["attempts"] == 1


async def test_a_hanging_endpoint_does_not_slow_the_others(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    aiohttp_server: Callable[..., Any],
) -> None:
    """The hanging endpoint holds every request until the test ends, so however long the 30
    deliveries to the healthy one take, they can only get through beside its two held slots."""
    gateway = await gateway_with(
        aiohttp_client, make_settings, delivery_concurrency=8, delivery_timeout=50
    )
    hanging = await holding_receiver(aiohttp_server)
    healthy = await serve(aiohttp_server)
    try:
        await endpoint(gateway, hanging.url, max_concurrency=2)
        await endpoint(gateway, healthy.url)
        for i in range(30):
            await trigger(gateway, n=i)
        await healthy.wait_for(30, timeout=45)
        assert hanging.arrived == 2, "the hanging endpoint holds only its own two slots"
    finally:
        hanging.release()


async def test_rotated_secret_signs_with_both_during_the_overlap(
    gateway: Any, receiver: Receiver
) -> None:
    hook = await endpoint(gateway, receiver.url)
    rotated = await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/rotate-secret")
    assert rotated.status == 200
    new_secret = (await rotated.json())["secret"]
    assert new_secret != hook["secret"]
    listed = await endpoint_state(gateway, hook["endpoint_id"])
    assert new_secret not in json.dumps(listed)
    assert listed["previous_secret_expires_at"] is not None
    await trigger(gateway)
    [call] = await receiver.wait_for(1)
    for secret in (hook["secret"], new_secret):
        standardwebhooks.Webhook(secret).verify(call.body, call.headers)
    assert len(call.headers["webhook-signature"].split(" ")) == 2


async def test_recover_replays_failed_deliveries_with_their_ids(
    gateway: Any, aiohttp_server: Callable[..., Any]
) -> None:
    port = free_port()
    hook = await endpoint(gateway, f"http://127.0.0.1:{port}/hook", retry_schedule=[0.01])
    runs = [await trigger(gateway, n=i) for i in range(3)]
    dead_ids = {(await settled_delivery(gateway, r, "failed"))["delivery_id"] for r in runs}
    receiver = Receiver()
    await aiohttp_server(receiver.app(), host="127.0.0.1", port=port)
    response = await gateway.post(
        f"/api/v1/endpoints/{hook['endpoint_id']}/recover",
        json={"since": "2000-01-01T00:00:00Z", "status": ["failed"]},
    )
    assert response.status == 202
    assert (await response.json())["replayed"] == 3
    calls = await receiver.wait_for(3)
    assert {c.headers["webhook-id"] for c in calls} == dead_ids


async def test_redeliver_a_run(gateway: Any, receiver: Receiver) -> None:
    await endpoint(gateway, receiver.url)
    run_id = await trigger(gateway)
    [first] = await receiver.wait_for(1)
    await settled_delivery(gateway, run_id, "succeeded")
    response = await gateway.post(f"/api/v1/runs/{run_id}/redeliver")
    assert (response.status, (await response.json())["replayed"]) == (202, 1)
    _, second = await receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body


async def test_bad_policy_input_is_refused(gateway: Any, receiver: Receiver) -> None:
    for extra in (
        {"retry_schedule": []},
        {"retry_schedule": [1, -2]},
        {"retry_schedule": "1,2"},
        {"timeout": 0},
        {"max_concurrency": 0},
        {"max_concurrency": 1.5},
        {"rate_limit": -1},
    ):
        response = await gateway.post("/api/v1/endpoints", json={"url": receiver.url, **extra})
        assert response.status == 422, extra
    hook = await endpoint(gateway, receiver.url)
    path = f"/api/v1/endpoints/{hook['endpoint_id']}"
    bad_rotation = await gateway.post(f"{path}/rotate-secret", json={"secret": "short"})
    assert bad_rotation.status == 422
    bad_recover = await gateway.post(f"{path}/recover", json={"since": "yesterday"})
    assert bad_recover.status == 422
    missing = "00000000-0000-0000-0000-000000000000"
    for action in ("pause", "resume", "rotate-secret", "recover"):
        assert (await gateway.post(f"/api/v1/endpoints/{missing}/{action}")).status == 404
    assert (await gateway.post(f"/api/v1/runs/{missing}/redeliver")).status == 404


async def test_a_target_refused_at_connect_time_is_an_attempt_error(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
) -> None:
    """An endpoint stored while loopback was allowed, sent to after it no longer is: the
    resolver refuses the address after DNS, and the refusal is recorded, not raised."""
    local = await gateway_with(aiohttp_client, make_settings)
    await endpoint(local, receiver.url.replace("127.0.0.1", "localhost"), retry_schedule=[0.01])
    await local.close()
    strict = await gateway_with(aiohttp_client, make_settings, allow_private_networks=False)
    run_id = await trigger(strict)
    dead = await settled_delivery(strict, run_id, "failed")
    assert all("loopback" in a["error"] for a in dead["attempt_log"])
    assert receiver.received == []
