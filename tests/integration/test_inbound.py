"""Inbound triggers: idempotency, timeouts, and every bad input answered clearly with nothing stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.store import store_from_url
from gateway.store.sqlite import SQLiteStore
from gateway.testing import Receiver, eventually
from tests.integration.helpers import count_rows, finished_run

TABLES = ("triggers", "runs", "endpoints", "deliveries")


async def client_for(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


def assert_nothing_stored(settings: Settings) -> None:
    assert {table: count_rows(settings, table) for table in TABLES} == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize(
    "header", ["Idempotency-Key", "webhook-id", "svix-id", "X-GitHub-Delivery"]
)
async def test_repeated_delivery_id_returns_the_first_run(
    gateway: Any, settings: Settings, receiver: Receiver, header: str
) -> None:
    await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    first = await gateway.post("/api/v1/webhook/echo", json={"n": 1}, headers={header: "abc-1"})
    again = await gateway.post("/api/v1/webhook/echo", json={"n": 2}, headers={header: "abc-1"})
    assert first.status == again.status == 202
    run_id = (await first.json())["run_id"]
    assert (await again.json())["run_id"] == run_id
    assert again.headers["Location"] == f"/api/v1/runs/{run_id}"
    assert (await finished_run(gateway, run_id))["values"] == {"n": 1}
    other_flow = await gateway.post("/api/v1/webhook/agent", json={}, headers={header: "abc-1"})
    assert (await other_flow.json())["run_id"] != run_id, "keys are scoped to their flow"
    assert count_rows(settings, "runs") == 2
    assert count_rows(settings, "triggers") == 2


async def test_trigger_is_stored_with_secrets_masked(gateway: Any, settings: Settings) -> None:
    response = await gateway.post(
        "/api/v1/webhook/echo?x-api-key=topsecretvalue&keep=1",
        data=b'{"a": 1}',
        headers={"Authorization": "Bearer topsecretvalue", "Content-Type": "application/json"},
    )
    run_id = (await response.json())["run_id"]
    store = gateway.app[keys.store_key]
    run = await store.get_run(run_id)
    trigger = await store.get_trigger(run.trigger_id)
    assert trigger.body == b'{"a": 1}'
    assert "topsecretvalue" not in trigger.headers["Authorization"]
    assert "topsecretvalue" not in trigger.query
    assert "keep=1" in trigger.query


async def test_flow_overrunning_its_timeout_ends_in_timeout(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    base = make_settings()
    flows = {
        **base.flows,
        "slow": FlowSettings(target="tests.integration.flows_for_tests:slow", timeout=0.2),
    }
    gateway = await client_for(aiohttp_client, base.replace(flows=flows))
    response = await gateway.post("/api/v1/webhook/slow", json={"seconds": 5})
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert run["status"] == "timeout"
    assert run["error"]["error"] == "TimeoutError"


@pytest.mark.parametrize("target", ["not_json", "not_finite"])
async def test_output_that_is_not_json_ends_in_error(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], target: str
) -> None:
    base = make_settings()
    flow = FlowSettings(target=f"tests.integration.flows_for_tests:{target}")
    flows = {**base.flows, "odd": flow}
    gateway = await client_for(aiohttp_client, base.replace(flows=flows))
    response = await gateway.post("/api/v1/webhook/odd", json={})
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert run["status"] == "error"
    assert "not JSON" in run["error"]["message"]


async def test_unknown_flow_is_404(gateway: Any, settings: Settings) -> None:
    response = await gateway.post("/api/v1/webhook/nope", json={"a": 1})
    assert response.status == 404
    assert (await response.json()) == {"detail": "Flow identifier nope not found"}
    assert_nothing_stored(settings)


async def test_empty_body_is_400(gateway: Any, settings: Settings) -> None:
    response = await gateway.post("/api/v1/webhook/echo", data=b"")
    assert response.status == 400
    assert "empty" in (await response.json())["detail"]
    assert_nothing_stored(settings)


async def test_body_over_the_limit_is_413(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(max_body_bytes=1024)
    gateway = await client_for(aiohttp_client, settings)
    response = await gateway.post("/api/v1/webhook/echo", data=b"x" * 2048)
    assert response.status == 413
    assert "1024" in (await response.json())["detail"]
    ok = await gateway.post("/api/v1/webhook/echo", data=b"x" * 1000)
    assert ok.status == 202
    assert count_rows(settings, "triggers") == 1


@pytest.mark.parametrize(
    "webhook",
    ["ftp://127.0.0.1/hook", "not a url", "http:///nohost", "http://127.0.0.1:0/x"],
)
async def test_refused_webhook_parameter_is_422(
    gateway: Any, settings: Settings, webhook: str
) -> None:
    response = await gateway.post("/api/v1/webhook/echo", params={"webhook": webhook}, json={})
    assert response.status == 422
    assert (await response.json())["detail"]
    assert_nothing_stored(settings)


async def test_loopback_webhook_is_refused_when_private_networks_are_off(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(allow_private_networks=False)
    gateway = await client_for(aiohttp_client, settings)
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]:9000/x"):
        response = await gateway.post("/api/v1/webhook/echo", params={"webhook": url}, json={})
        assert response.status == 422, url
        assert "blocked" in (await response.json())["detail"]
        response = await gateway.post("/api/v1/endpoints", json={"url": url})
        assert response.status == 422, url
    assert_nothing_stored(settings)


async def test_api_key_is_required_when_set(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(api_key="k-123456789")
    gateway = await client_for(aiohttp_client, settings)
    missing = await gateway.post("/api/v1/webhook/echo", json={})
    wrong = await gateway.post("/api/v1/webhook/echo", json={}, headers={"x-api-key": "nope"})
    listing = await gateway.get("/api/v1/endpoints")
    assert (missing.status, wrong.status, listing.status) == (403, 403, 403)
    assert (await wrong.json()) == {"detail": "Invalid API key"}
    assert_nothing_stored(settings)
    assert (await gateway.get("/healthz")).status == 200
    by_header = await gateway.post(
        "/api/v1/webhook/echo", json={}, headers={"x-api-key": "k-123456789"}
    )
    by_query = await gateway.post("/api/v1/webhook/echo?x-api-key=k-123456789", json={})
    assert (by_header.status, by_query.status) == (202, 202)


async def test_run_lookup_errors(gateway: Any) -> None:
    bad = await gateway.get("/api/v1/runs/not-a-uuid")
    assert bad.status == 422
    assert (await bad.json()) == {"detail": "Invalid run ID: must be a UUID"}
    missing = await gateway.get("/api/v1/runs/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404
    assert "not found" in (await missing.json())["detail"]


async def test_unknown_route_and_method_answer_json(gateway: Any) -> None:
    missing = await gateway.get("/api/v1/nothing-here")
    assert missing.status == 404
    assert (await missing.json()) == {"detail": "Not Found"}
    wrong_method = await gateway.get("/api/v1/webhook/echo")
    assert wrong_method.status == 405
    assert "POST" in wrong_method.headers["Allow"]


async def test_cancelling_a_run_interrupts_it_and_delivers_the_ending(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    base = make_settings()
    flows = {**base.flows, "slow": FlowSettings(target="tests.integration.flows_for_tests:slow")}
    gateway = await client_for(aiohttp_client, base.replace(flows=flows))
    await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    response = await gateway.post("/api/v1/webhook/slow", json={"seconds": 30})
    run_id = (await response.json())["run_id"]

    async def running() -> bool:
        return (await (await gateway.get(f"/api/v1/runs/{run_id}")).json())["status"] == "running"

    await eventually(running)
    cancelled = await gateway.app[keys.worker_key].cancel(run_id, "stopped by the test")
    assert cancelled is not None
    assert cancelled.status == "interrupted"
    [callback] = await receiver.wait_for(1)
    payload = json.loads(callback.body)
    assert (payload["status"], payload["error"]["message"]) == (
        "interrupted",
        "stopped by the test",
    )


async def test_an_overloaded_store_refuses_new_work_with_503(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Backpressure: while the store is more than ``max_write_backlog`` writes behind, new
    triggers and runs get 503 with Retry-After and nothing is stored; at the limit itself a
    trigger is still taken. A write that waits (a stalled disk) holds the store behind; the
    worker and dispatcher are stopped so that only the triggers queue writes behind it."""
    settings = make_settings(max_write_backlog=2, prune_interval=0)  # no pruner writes either
    if not settings.database_url.startswith("sqlite:///"):
        # The stall is staged inside SQLite's group-commit writer.
        settings = settings.replace(database_url=f"sqlite:///{tmp_path / 'backlog.db'}")
    store = store_from_url(settings.database_url, settings.secret_key)
    assert isinstance(store, SQLiteStore)
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings, store=store))
    await gateway.app[keys.worker_key].stop()
    await gateway.app[keys.dispatcher_key].stop()
    started, stall = threading.Event(), threading.Event()

    def stalled_write(_: sqlite3.Connection) -> None:
        started.set()
        stall.wait(30)

    async def backlog_is(count: int) -> bool:
        return started.is_set() and store.write_backlog() == count

    stalled = asyncio.create_task(store.writer.submit(stalled_write))
    queued: list[asyncio.Task[Any]] = []
    try:
        await eventually(lambda: backlog_is(0))
        for n in range(3):  # taken at a backlog of 0, 1 and 2: never more than the limit
            post = gateway.post("/api/v1/webhook/echo", json={"n": n})
            queued.append(asyncio.create_task(post))
            await eventually(lambda n=n: backlog_is(n + 1))
        refused = await gateway.post("/api/v1/webhook/echo", json={"n": 3})
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert "overloaded" in (await refused.json())["detail"]
        run = await gateway.post("/api/v1/run/echo", json={"input_value": "x"})
        assert run.status == 503
    finally:
        stall.set()
        await stalled
    assert [(await task).status for task in queued] == [202] * 3
    assert count_rows(settings, "runs") == count_rows(settings, "triggers") == 3
