"""Langflow's build job API: the seed's requests (``seeds/003``) replayed against the real app;
NDJSON framing byte by byte, polling with the end sentinel, the legacy ``?stream=``, late and
second readers, start/stop components, cancel (``reference/langflow-api.md`` §3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from gateway.settings import FlowSettings, Settings
from tests.integration.helpers import count_rows
from tests.integration.test_langflow_run import HEADERS, KEY, finished_run

ACCEPT = {**HEADERS, "accept": "application/json"}
END_VERTEX_KEYS = [
    "id", "inactivated_vertices", "next_vertices_ids", "top_level_vertices", "valid", "params",
    "data", "timestamp",
]  # fmt: skip
VERTEX_DATA_KEYS = [
    "results", "outputs", "logs", "message", "artifacts", "timedelta", "duration",
    "used_frozen_result", "token_usage",
]  # fmt: skip
OUTPUT_META_KEYS = [
    "component_id", "display_name", "vertex_type", "is_output", "is_terminal", "output_types",
]  # fmt: skip


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    base = make_settings(api_key=KEY)
    stall = FlowSettings(target="tests.integration.test_langflow_run:stall", timeout=30)
    return base.replace(flows={**base.flows, "stall": stall})


def ndjson(body: bytes) -> list[dict[str, Any]]:
    """Streamed NDJSON as Langflow frames it: ``json.dumps(event) + "\\n\\n"`` per event."""
    assert body.endswith(b"\n\n")
    events = [json.loads(chunk) for chunk in body[:-2].split(b"\n\n")]
    assert b"".join(json.dumps(e).encode() + b"\n\n" for e in events) == body
    assert all(list(e) == ["event", "data"] for e in events)
    return events


async def start_job(gateway: Any, flow: str, body: Any = None, query: str = "") -> str:
    response = await gateway.post(f"/api/v1/build/{flow}/flow{query}", headers=ACCEPT, json=body)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert list(answer) == ["job_id"]
    return str(uuid.UUID(answer["job_id"]))


async def streamed(gateway: Any, job_id: str, query: str = "") -> tuple[bytes, list[Any]]:
    response = await gateway.get(f"/api/v1/build/{job_id}/events{query}", headers=ACCEPT)
    assert response.status == 200
    assert response.content_type == "application/x-ndjson"
    body = await response.read()
    return body, ndjson(body)


async def test_seed_build_then_stream_events(gateway: Any) -> None:
    # seeds/003: POST /api/v1/build/$FLOW_ID/flow -d '{"inputs": {"input_value": "Tell me a story"}}'
    job_id = await start_job(gateway, "chat", {"inputs": {"input_value": "Tell me a story"}})
    # then GET /api/v1/build/$JOB_ID/events (streaming is the default)
    _, events = await streamed(gateway, job_id)
    names = [e["event"] for e in events]
    reply = "You said: Tell me a story"
    tokens = len(reply.split(" "))
    assert names == [
        "vertices_sorted",
        "build_start",
        "add_message",
        "add_message",
        *["token"] * tokens,
        "add_message",
        "end_vertex",
        "end",
    ]
    assert events[0]["data"] == {"ids": ["chat"], "to_run": ["chat"]}
    assert events[1]["data"] == {}
    assert events[2]["data"]["text"] == "Tell me a story"
    assert events[2]["data"]["sender"] == "User"
    assert "".join(e["data"]["chunk"] for e in events if e["event"] == "token") == reply
    end_vertex = events[-2]["data"]
    assert list(end_vertex) == ["build_data", "output_meta"]
    build_data = end_vertex["build_data"]
    assert list(build_data) == END_VERTEX_KEYS
    assert list(build_data["data"]) == VERTEX_DATA_KEYS
    assert list(end_vertex["output_meta"]) == OUTPUT_META_KEYS
    assert build_data["id"] == "chat"
    assert build_data["valid"] is True
    assert build_data["data"]["results"]["message"]["text"] == reply
    assert list(events[-1]["data"]) == ["build_duration"]
    assert isinstance(events[-1]["data"]["build_duration"], float)


async def test_a_late_and_a_second_reader_get_every_event_byte_for_byte(gateway: Any) -> None:
    job_id = await start_job(gateway, "agent", {"inputs": {"input_value": "ice cream"}})
    first, _ = await streamed(gateway, job_id)
    await finished_run(gateway, job_id)
    late, events = await streamed(gateway, job_id)
    again, _ = await streamed(gateway, job_id, "?event_delivery=streaming")
    assert first == late == again
    assert [e["event"] for e in events] == [
        "vertices_sorted",
        "build_start",
        "add_message",
        "end_vertex",
        "add_message",
        "end_vertex",
        "end",
    ]
    assert events[0]["data"] == {
        "ids": ["refine_topic"],
        "to_run": ["refine_topic", "generate_joke"],
    }
    refine, joke = events[3]["data"]["build_data"], events[5]["data"]["build_data"]
    assert (refine["id"], refine["next_vertices_ids"]) == ("refine_topic", ["generate_joke"])
    assert refine["data"]["outputs"]["message"]["message"] == "ice cream and cats"
    assert (joke["id"], joke["next_vertices_ids"]) == ("generate_joke", [])
    assert joke["data"]["results"]["message"]["text"] == "This is a joke about ice cream and cats"
    assert events[5]["data"]["output_meta"]["is_output"] is True
    assert events[3]["data"]["output_meta"]["is_output"] is False


async def test_polling_returns_new_events_then_the_end_sentinel(gateway: Any) -> None:
    job_id = await start_job(gateway, "chat", {"inputs": {"input_value": "poll me"}})
    _, expected = await streamed(gateway, job_id)
    polled: list[Any] = []
    for _ in range(100):  # bounded: each poll returns at least one event or the run has ended
        response = await gateway.get(
            f"/api/v1/build/{job_id}/events?event_delivery=polling", headers=ACCEPT
        )
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        body = await response.read()
        # "\n".join of events that each end in "\n\n": separated by "\n\n\n"
        batch = [json.loads(chunk) for chunk in body.split(b"\n\n\n")]
        assert b"\n".join(json.dumps(e).encode() + b"\n\n" for e in batch) == body
        polled.extend(batch)
        if any(e["event"] == "end" for e in batch):
            break
    assert polled == expected
    after = await gateway.get(
        f"/api/v1/build/{job_id}/events?event_delivery=polling", headers=ACCEPT
    )
    assert await after.read() == b'{"event": "end", "data": {}}\n\n'


async def test_legacy_stream_false_gives_one_event_per_call_then_null(gateway: Any) -> None:
    job_id = await start_job(gateway, "agent", {"inputs": {"input_value": "x"}})
    _, expected = await streamed(gateway, job_id, "?stream=true")
    got = []
    for _ in range(len(expected) + 1):
        # seeds/003: GET .../events?stream=false
        response = await gateway.get(f"/api/v1/build/{job_id}/events?stream=false", headers=ACCEPT)
        answer = await response.json()
        assert list(answer) == ["event"]
        if answer["event"] is None:
            break
        assert answer["event"].endswith("\n\n")
        got.append(json.loads(answer["event"]))
    assert got == expected


async def test_seed_stop_component_in_the_body_is_ignored_as_by_langflow(gateway: Any) -> None:
    # seeds/003: -d '{"stop_component_id": "OpenAIModel-Uksag"}' (a query parameter, not a body key)
    job_id = await start_job(gateway, "agent", {"stop_component_id": "OpenAIModel-Uksag"})
    _, events = await streamed(gateway, job_id)
    assert events[0]["data"]["to_run"] == ["refine_topic", "generate_joke"]
    assert events[-1]["event"] == "end"


async def test_stop_and_start_component_ids_select_the_steps(gateway: Any) -> None:
    job_id = await start_job(
        gateway, "joke", {"inputs": {"input_value": "tea"}}, "?stop_component_id=refine_topic"
    )
    _, events = await streamed(gateway, job_id)
    assert events[0]["data"] == {"ids": ["refine_topic"], "to_run": ["refine_topic"]}
    assert [e["data"]["build_data"]["id"] for e in events if e["event"] == "end_vertex"] == [
        "refine_topic"
    ]
    run = await finished_run(gateway, job_id)
    assert run["values"] == {"input_value": "tea", "topic": "tea and cats"}

    job_id = await start_job(gateway, "agent", {}, "?start_component_id=generate_joke")
    _, events = await streamed(gateway, job_id)
    assert events[0]["data"] == {"ids": ["generate_joke"], "to_run": ["generate_joke"]}
    # generate_joke alone has no topic: it fails, reported as Langflow reports a component failure
    failed = events[-2]["data"]["build_data"]
    assert (events[-2]["event"], failed["valid"]) == ("end_vertex", False)
    assert failed["data"]["outputs"]["message"]["type"] == "error"
    assert events[-1]["event"] == "end"
    assert (await finished_run(gateway, job_id))["status"] == "error"


async def test_seed_data_override_and_session(gateway: Any) -> None:
    body = {
        "data": {"nodes": [], "edges": []},
        "inputs": {"input_value": "Enter your custom input here", "session": "session_id"},
    }
    job_id = await start_job(gateway, "chat", body)
    _, events = await streamed(gateway, job_id)
    assert events[2]["data"]["session_id"] == "session_id"
    assert events[2]["data"]["text"] == "Enter your custom input here"


async def test_direct_delivery_answers_with_the_events(gateway: Any) -> None:
    response = await gateway.post(
        "/api/v1/build/echo/flow?event_delivery=direct",
        headers=ACCEPT,
        json={"inputs": {"input_value": "hi"}},
    )
    assert response.status == 200
    assert response.content_type == "application/x-ndjson"
    events = ndjson(await response.read())
    assert [e["event"] for e in events] == [
        "vertices_sorted",
        "build_start",
        "add_message",
        "add_message",
        "end_vertex",
        "end",
    ]
    assert events[3]["data"]["text"] == "hi"  # echo's output {"input_value": "hi"}, as text


async def test_cancel_interrupts_the_build(gateway: Any) -> None:
    job_id = await start_job(gateway, "stall", {"inputs": {"input_value": "x"}})
    response = await gateway.post(f"/api/v1/build/{job_id}/cancel", headers=ACCEPT)
    assert await response.json() == {
        "success": True,
        "message": "Flow build cancelled successfully",
    }
    run = await finished_run(gateway, job_id)
    assert run["status"] == "interrupted"
    _, events = await streamed(gateway, job_id)
    assert events[-1] == {"event": "end", "data": {}}
    again = await gateway.post(f"/api/v1/build/{job_id}/cancel", headers=ACCEPT)
    assert (await again.json())["success"] is True


async def test_timeout_is_a_terminal_error_event(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    from gateway.app import create_app

    short = FlowSettings(target="tests.integration.test_langflow_run:stall", timeout=0.2)
    gateway = await aiohttp_client(create_app(settings.replace(flows={"stall": short})))
    job_id = await start_job(gateway, "stall", {})
    _, events = await streamed(gateway, job_id)
    assert [e["event"] for e in events][-1] == "error"
    assert events[-1]["data"]["category"] == "error"
    assert events[-1]["data"]["error"] is True


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/api/v1/build/nope/flow", {}, 404, "Flow with id nope not found"),
        ("/api/v1/build/chat/flow", {"inputs": {"input_value": 1}}, 422, "inputs.input_value"),
        ("/api/v1/build/chat/flow", {"inputs": {"bogus": 1}}, 422, "inputs: unknown field(s)"),
        ("/api/v1/build/chat/flow", {"inputs": []}, 422, "inputs: expected dict"),
        ("/api/v1/build/chat/flow", {"files": [1]}, 422, "files: expected a list of strings"),
        ("/api/v1/build/chat/flow?event_delivery=bogus", {}, 422, "event_delivery: expected"),
        ("/api/v1/build/chat/flow?log_builds=maybe", {}, 422, "log_builds: expected"),
        ("/api/v1/build/agent/flow?stop_component_id=nope", {}, 422, "stop_component_id"),
        ("/api/v1/build/chat/flow", {"webhook": "file:///etc/passwd"}, 422, "webhook URL"),
    ],
)
async def test_bad_build_requests_store_nothing(
    gateway: Any, settings: Settings, path: str, body: Any, status: int, detail: str
) -> None:
    response = await gateway.post(path, headers=ACCEPT, json=body)
    assert response.status == status
    answer = await response.json()
    assert list(answer) == ["detail"]
    assert answer["detail"].startswith(detail)
    assert count_rows(settings, "runs") == 0


async def test_unknown_jobs_are_404(gateway: Any) -> None:
    missing = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/api/v1/build/{missing}/events"),
        ("GET", "/api/v1/build/not-a-uuid/events"),
        ("POST", f"/api/v1/build/{missing}/cancel"),
    ]:
        response = await gateway.request(method, path, headers=ACCEPT)
        assert response.status == 404
        job = path.split("/")[4]
        assert await response.json() == {"detail": f"Job not found: {job}"}
    job_id = await start_job(gateway, "echo", {})
    bad = await gateway.get(f"/api/v1/build/{job_id}/events?event_delivery=x", headers=ACCEPT)
    assert bad.status == 422
