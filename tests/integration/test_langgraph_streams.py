"""LangGraph SSE byte for byte, every stream mode we can produce, resumption with
``Last-Event-ID``, run join streams and thread streams, through the real SDK and raw HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from langgraph_sdk.client import LangGraphClient

from gateway.api import langgraph_runs
from gateway.settings import FlowSettings, Settings
from gateway.testing import eventually

SAMPLES = Path(__file__).resolve().parents[1] / "data"
FINAL = {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    shipped: Settings = make_settings()
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Events as dicts of their fields; comments (heartbeats) dropped."""
    events = []
    for block in raw.decode().split("\r\n\r\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\r\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def sample(name: str) -> tuple[dict[str, str], bytes]:
    head, _, body = (SAMPLES / name).read_bytes().partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        key, _, value = line.partition(": ")
        headers[key.lower()] = value
    return headers, body


async def test_sse_bytes_match_the_agent_server_capture(gateway: Any) -> None:
    """sse_updates_values.raw: same events, same bytes, ids and run ids aside."""
    expected_headers, expected_body = sample("sse_updates_values.raw")
    thread_id = (await (await gateway.post("/threads", json={})).json())["thread_id"]
    body = {
        "assistant_id": "agent",
        "input": {"topic": "ice cream"},
        "stream_mode": ["updates", "values"],
    }
    response = await gateway.post(f"/threads/{thread_id}/runs/stream", json=body)
    assert response.status == 200
    raw = await response.read()
    run_id = parse_sse(raw)[0]["data"]["run_id"]

    for name in ("content-type", "cache-control", "x-accel-buffering", "connection"):
        assert response.headers[name] == expected_headers[name]
    assert response.headers["Location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert response.headers["Content-Location"] == f"/threads/{thread_id}/runs/{run_id}"

    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    without_ids = re.sub(rb"id: \d+\r\n", b"", raw)
    sample_run_id = parse_sse(expected_body)[0]["data"]["run_id"]
    assert without_ids == expected_body.replace(sample_run_id.encode(), run_id.encode())
    ids = [int(e["id"]) for e in parse_sse(raw)[1:]]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids) == 5


async def test_stateless_stream_matches_its_capture(gateway: Any) -> None:
    _, expected_body = sample("sse_stateless_all.raw")
    body = {
        "assistant_id": "agent",
        "input": {"topic": "ice cream"},
        "stream_mode": ["updates", "values", "messages-tuple"],
    }
    response = await gateway.post("/runs/stream", json=body)
    raw = await response.read()
    run_id = parse_sse(raw)[0]["data"]["run_id"]
    assert response.headers["Location"] == f"/runs/{run_id}/stream"
    assert response.headers["Content-Location"] == f"/runs/{run_id}"
    sample_run_id = parse_sse(expected_body)[0]["data"]["run_id"]
    assert re.sub(rb"id: \d+\r\n", b"", raw) == expected_body.replace(
        sample_run_id.encode(), run_id.encode()
    )


async def test_sdk_stream_modes(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    updates = [
        p.data
        async for p in client.runs.stream(
            thread_id, "agent", input={"topic": "ice cream"}, stream_mode="updates"
        )
    ]
    assert updates[1:] == [
        {"refine_topic": {"topic": "ice cream and cats"}},
        {"generate_joke": {"joke": "This is a joke about ice cream and cats"}},
    ]

    chat = [
        p
        async for p in client.runs.stream(
            thread_id, "chat", input={"input_value": "hi there"}, stream_mode="messages-tuple"
        )
    ]
    tokens = [p.data[0]["content"] for p in chat if p.event == "messages"]
    assert "".join(tokens) == "You said: hi there"
    assert all(p.data[1]["langgraph_node"] for p in chat if p.event == "messages")

    v1 = [
        p
        async for p in client.runs.stream(
            thread_id, "chat", input={"input_value": "hi"}, stream_mode="messages"
        )
    ]
    names = [p.event for p in v1]
    assert names[:3] == ["metadata", "messages/metadata", "messages/partial"]
    assert names[-1] == "messages/complete"
    assert v1[-1].data[0]["content"] == "You said: hi"

    debug = [
        p.data
        async for p in client.runs.stream(
            thread_id, "agent", input={"topic": "x"}, stream_mode="debug"
        )
    ]
    assert {d["type"] for d in debug[1:]} == {"checkpoint", "task", "task_result"}

    failing = [
        p async for p in client.runs.stream(thread_id, "fail", input={}, stream_mode="values")
    ]
    assert failing[-1].event == "error"
    assert failing[-1].data["error"] == "RuntimeError"


async def test_resume_after_disconnect_gives_exactly_the_rest(
    gateway: Any, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    body = {
        "assistant_id": "chat",
        "input": {"input_value": "one two three four five six seven"},
        "stream_mode": ["messages-tuple", "values"],
    }
    url = gateway.make_url(f"/threads/{thread_id}/runs/stream")
    first: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        location = response.headers["Location"]
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n\r\n")
            first.extend(parse_sse(b"\r\n\r\n".join(complete) + b"\r\n\r\n") if complete else [])
            if len(first) >= 4:
                break
    first = first[:4]
    assert first[0]["event"] == "metadata"
    run_id = first[0]["data"]["run_id"]
    assert location == f"/threads/{thread_id}/runs/{run_id}/stream"

    everything = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id="0")]
    rest = [
        p async for p in client.runs.join_stream(thread_id, run_id, last_event_id=first[-1]["id"])
    ]
    seen = [(e["event"], e["data"], e["id"]) for e in first[1:]]
    assert [(p.event, p.data, p.id) for p in everything] == seen + [
        (p.event, p.data, p.id) for p in rest
    ]
    assert not {e["id"] for e in first[1:]} & {p.id for p in rest}
    tokens = [p.data[0]["content"] for p in everything if p.event == "messages"]
    assert "".join(tokens) == "You said: one two three four five six seven"


async def test_join_stream_of_a_background_run(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        thread_id, "agent", input={"topic": "ice cream"}, stream_mode=["updates", "values"]
    )
    parts = [p async for p in client.runs.join_stream(thread_id, run["run_id"])]
    assert [p.event for p in parts] == [
        "metadata",
        "values",
        "updates",
        "values",
        "updates",
        "values",
    ]
    assert parts[-1].data == FINAL
    only_updates = [
        p.event
        async for p in client.runs.join_stream(thread_id, run["run_id"], stream_mode="updates")
    ]
    assert only_updates == ["metadata", "updates", "updates"]


async def test_thread_join_stream_replays_and_resumes(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.wait(thread_id, "agent", input={"topic": "ice cream"})
    assert first == FINAL
    second = await client.runs.create(thread_id, "echo", input={"n": 2})
    await client.runs.join(thread_id, second["run_id"])

    parts = []
    stream = await client.threads.join_stream(thread_id, last_event_id="-")
    async for part in stream:
        parts.append(part)
        if (
            part.event == "metadata"
            and part.data.get("run_id") == second["run_id"]
            and part.data.get("status") == "run_done"
        ):
            break
    names = [p.event for p in parts]
    assert names.count("metadata") == 4  # a start and a run_done per run
    assert parts[0].data["attempt"] == 1
    assert {"status": "run_done", "run_id": second["run_id"]} == parts[-1].data
    assert [p.data for p in parts if p.event == "values"][-1] == {"n": 2}

    middle = parts[len(parts) // 2]
    rest = []
    stream = await client.threads.join_stream(thread_id, last_event_id=middle.id)
    async for part in stream:
        rest.append(part)
        if part.id == parts[-1].id:
            break
    assert [(p.event, p.data, p.id) for p in rest] == [
        (p.event, p.data, p.id) for p in parts[len(parts) // 2 + 1 :]
    ]

    lifecycle = []
    stream = await client.threads.join_stream(thread_id, last_event_id="-", stream_mode="lifecycle")
    async for part in stream:
        lifecycle.append(part.data)
        if len(lifecycle) == 4:
            break
    assert [d.get("status") for d in lifecycle] == [None, "run_done", None, "run_done"]


async def test_heartbeats_while_a_run_is_quiet(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(langgraph_runs, "KEEPALIVE_SECONDS", 0.05)
    response = await gateway.post(
        "/runs/stream", json={"assistant_id": "slow", "input": {"seconds": 0.5}}
    )
    raw = await response.read()
    assert b": heartbeat\r\n\r\n" in raw
    assert [e["event"] for e in parse_sse(raw)] == ["metadata", "values"]
    wait = await gateway.post(
        "/runs/wait", json={"assistant_id": "slow", "input": {"seconds": 0.5}}
    )
    text = await wait.text()
    assert text.startswith("\n")
    assert json.loads(text) == {"seconds": 0.5}


async def test_a_client_leaving_a_stream_with_on_disconnect_cancel_interrupts_the_run(
    gateway: Any,
) -> None:
    """Noticed at once, with nothing written meanwhile (no heartbeat falls due), on both the
    threaded and the stateless route."""
    thread_id = (await (await gateway.post("/threads", json={})).json())["thread_id"]
    body = {
        "assistant_id": "slow",
        "input": {"seconds": 60},
        "on_disconnect": "cancel",
        "stream_mode": ["values"],
    }
    for path in (f"/threads/{thread_id}/runs/stream", "/runs/stream"):
        async with aiohttp.ClientSession() as session:
            response = await session.post(gateway.make_url(path), json=body)
            first = await response.content.readuntil(b"\r\n\r\n")
            [metadata] = parse_sse(first)
            run_id = metadata["data"]["run_id"]
            assert run_id in response.headers["Location"]
            response.close()  # the client goes away while the run sleeps

        async def interrupted(run_id: str = run_id) -> bool:
            run = await (await gateway.get(f"/api/v1/runs/{run_id}")).json()
            return bool(run["status"] == "interrupted")

        await eventually(interrupted, timeout=langgraph_runs.KEEPALIVE_SECONDS * 0.8)
