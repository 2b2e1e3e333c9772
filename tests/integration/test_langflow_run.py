"""Langflow's ``/api/v1/run`` (and ``/run/advanced``): the seed's curl requests replayed verbatim
(host and flow id adapted) against the real app, answers checked field by field against
``reference/langflow-api.md`` §2 and the real bytes of ``langflow-stream-sample.txt``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from gateway import models
from gateway.flows import RunContext
from gateway.settings import FlowSettings, Settings
from gateway.testing import Receiver, eventually
from tests.integration.helpers import count_rows

KEY = "sk-test-langflow"
HEADERS = {"Content-Type": "application/json", "x-api-key": KEY}
# Key lists (in order) of the real Langflow 1.13 stream in reference/langflow-stream-sample.txt.
MESSAGE_KEYS = [
    "text_key", "data", "default_value", "sender", "sender_name", "files", "session_id",
    "context_id", "run_id", "timestamp", "flow_id", "error", "edit", "properties", "category",
    "content_blocks", "duration", "session_metadata", "text",
]  # fmt: skip
MESSAGE_DATA_KEYS = [
    "timestamp", "sender", "sender_name", "session_id", "context_id", "text", "files", "error",
    "edit", "properties", "category", "content_blocks", "session_metadata", "id", "flow_id",
    "run_id", "duration",
]  # fmt: skip
PROPERTIES_KEYS = [
    "text_color", "background_color", "edited", "source", "icon", "allow_markdown",
    "positive_feedback", "state", "targets", "usage", "build_duration",
]  # fmt: skip
RESULT_DATA_KEYS = [
    "results", "artifacts", "outputs", "logs", "messages", "timedelta", "duration",
    "component_display_name", "component_id", "used_frozen_result", "token_usage",
]  # fmt: skip
MESSAGES_ITEM_KEYS = [
    "message", "sender", "sender_name", "session_id", "stream_url", "component_id", "files",
    "type",
]  # fmt: skip


async def stall(value: Any, context: RunContext) -> Any:
    """Streams one token, then waits until cancelled (or its timeout)."""
    await context.token("first")
    await asyncio.Event().wait()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    base = make_settings(api_key=KEY)
    flows = {**base.flows, "stall": FlowSettings(target=f"{__name__}:stall", timeout=30)}
    return base.replace(flows=flows)


async def finished_run(gateway: Any, run_id: str) -> dict[str, Any]:
    """The run once it has ended (read with the API key)."""

    async def check() -> dict[str, Any] | None:
        run: dict[str, Any] = await (
            await gateway.get(f"/api/v1/runs/{run_id}", headers=HEADERS)
        ).json()
        return run if run["status"] not in ("pending", "running") else None

    result: dict[str, Any] = await eventually(check)
    return result


def frames(body: bytes) -> list[dict[str, Any]]:
    """Split a Langflow stream, checking its framing byte by byte: every event is exactly
    ``json.dumps(event) + "\\n\\n"`` (no ``data:`` prefix, no ``id:`` line, no other bytes)."""
    assert body.endswith(b"\n\n")
    chunks = body[:-2].split(b"\n\n")
    events = []
    for chunk in chunks:
        assert b"\n" not in chunk
        assert not chunk.startswith((b"data:", b"id:", b"event:"))
        event = json.loads(chunk)
        assert json.dumps(event).encode() == chunk
        assert list(event) == ["event", "data"]
        events.append(event)
    assert b"".join(json.dumps(e).encode() + b"\n\n" for e in events) == body
    return events


def check_message(message: dict[str, Any], *, text: str, sender: str, session_id: str) -> None:
    assert list(message) == MESSAGE_KEYS
    assert list(message["data"]) == MESSAGE_DATA_KEYS
    assert list(message["properties"]) == PROPERTIES_KEYS
    assert message["text"] == message["data"]["text"] == text
    assert message["sender"] == message["data"]["sender"] == sender
    assert message["sender_name"] == ("User" if sender == "User" else "AI")
    assert message["session_id"] == message["data"]["session_id"] == session_id
    assert message["text_key"] == "text"
    assert message["category"] == "message"
    assert message["error"] is False
    assert message["session_metadata"] == {"graph_run_id": message["run_id"]}
    assert message["timestamp"].endswith(" UTC")


def check_result_data(result: dict[str, Any], *, text: str, component: str, session: str) -> None:
    assert list(result) == RESULT_DATA_KEYS
    assert list(result["results"]) == ["message"]
    check_message(result["results"]["message"], text=text, sender="Machine", session_id=session)
    assert result["outputs"] == {"message": {"message": text, "type": "text"}}
    assert result["logs"] == {"message": []}
    assert result["artifacts"] == {
        "message": text,
        "sender": "Machine",
        "sender_name": "AI",
        "files": [],
        "type": "object",
    }
    assert [list(m) for m in result["messages"]] == [MESSAGES_ITEM_KEYS]
    assert result["messages"][0]["message"] == text
    assert result["messages"][0]["component_id"] == component
    assert result["component_id"] == result["component_display_name"] == component
    assert result["used_frozen_result"] is False
    assert result["token_usage"] is None


def test_key_lists_are_the_reference_samples() -> None:
    """The key lists these tests demand are read from the real Langflow bytes."""
    from tests.conftest import ROOT

    sample = (ROOT / "tests/data/langflow-stream-sample.txt").read_bytes()
    events = frames(sample)
    first = events[0]["data"]
    assert list(first) == [*MESSAGE_KEYS, "id"][:1] + list(first)[1:]  # text_key first
    assert [k for k in first if k != "id"] == MESSAGE_KEYS
    assert list(first["data"]) == MESSAGE_DATA_KEYS
    assert list(first["properties"]) == PROPERTIES_KEYS
    result = events[-1]["data"]["result"]
    assert list(result) == ["session_id", "outputs"]
    assert list(result["outputs"][0]) == ["inputs", "outputs"]
    assert list(result["outputs"][0]["outputs"][0]) == RESULT_DATA_KEYS
    assert list(result["outputs"][0]["outputs"][0]["messages"][0]) == MESSAGES_ITEM_KEYS
    assert list(result["outputs"][0]["outputs"][0]["results"]["message"]) == MESSAGE_KEYS


async def test_seed_run_request_answers_langflows_run_response(gateway: Any) -> None:
    # seeds/001: curl -X POST "$LANGFLOW_SERVER_URL/api/v1/run/$FLOW_ID" -H "Content-Type:
    # application/json" -H "x-api-key: $LANGFLOW_API_KEY" -d '{…}'
    response = await gateway.post(
        "/api/v1/run/chat",
        headers=HEADERS,
        data="""{
"input_value": "Tell me about something interesting!",
"session_id": "chat-123",
"input_type": "chat",
"output_type": "chat",
"output_component": "",
"tweaks": null
}""",
    )
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert list(body) == ["session_id", "outputs"]
    assert body["session_id"] == "chat-123"
    assert len(body["outputs"]) == 1
    assert list(body["outputs"][0]) == ["inputs", "outputs"]
    assert body["outputs"][0]["inputs"] == {"input_value": "Tell me about something interesting!"}
    [result] = body["outputs"][0]["outputs"]
    answer = "You said: Tell me about something interesting!"
    check_result_data(result, text=answer, component="chat", session="chat-123")
    message = result["results"]["message"]
    # The canonical answer path of the docs:
    assert body["outputs"][0]["outputs"][0]["results"]["message"]["text"] == answer
    assert message["flow_id"] == models.assistant_id("chat")

    # A normal run: stored, and visible with its output.
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    assert message["run_id"] == run_id
    run = await (await gateway.get(f"/api/v1/runs/{run_id}", headers=HEADERS)).json()
    assert run["status"] == "success"
    assert run["values"] == {"message": answer}
    assert run["kwargs"]["session_id"] == "chat-123"


async def test_api_key_in_header_or_query_as_langflow(gateway: Any) -> None:
    missing = await gateway.post("/api/v1/run/echo", json={"input_value": "x"})
    assert missing.status == 403
    assert await missing.json() == {"detail": "An API key must be passed as query or header"}
    wrong = await gateway.post("/api/v1/run/echo", json={}, headers={"x-api-key": "nope"})
    assert (wrong.status, await wrong.json()) == (403, {"detail": "Invalid API key"})
    by_query = await gateway.post(f"/api/v1/run/echo?x-api-key={KEY}", json={"input_value": "x"})
    assert by_query.status == 200


async def test_seed_streaming_example_frames_exactly_as_langflow(gateway: Any) -> None:
    # seeds/001: curl -X POST "$URL/api/v1/run/$FLOW_ID?stream=true" -H "accept:
    # application/json" … -d '{"message": "Tell me something interesting!", "session_id": "chat-123"}'
    response = await gateway.post(
        "/api/v1/run/chat?stream=true",
        headers={**HEADERS, "accept": "application/json"},
        data='{\n"message": "Tell me something interesting!",\n"session_id": "chat-123"\n}',
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = frames(await response.read())
    names = [e["event"] for e in events]
    # `message` is not a Langflow field: ignored, so the flow got no input_value.
    reply = "Say something and I will answer."
    assert names == ["add_message"] + ["token"] * len(reply.split(" ")) + ["add_message", "end"]
    partial, final = events[0]["data"], events[-2]["data"]
    assert partial["properties"]["state"] == "partial"
    assert partial["text"] == ""
    assert final["properties"]["state"] == "complete"
    check_message(
        {k: v for k, v in final.items() if k != "id"},
        text=reply,
        sender="Machine",
        session_id="chat-123",
    )
    tokens = [e["data"] for e in events if e["event"] == "token"]
    assert all(list(t) == ["chunk", "id"] for t in tokens)
    assert "".join(t["chunk"] for t in tokens) == reply
    assert {t["id"] for t in tokens} == {partial["id"], final["id"], final["data"]["id"]}
    end = events[-1]["data"]
    assert list(end) == ["result"]
    assert end["result"]["session_id"] == "chat-123"
    assert end["result"]["outputs"][0]["inputs"] == {}
    [result] = end["result"]["outputs"][0]["outputs"]
    check_result_data(result, text=reply, component="chat", session="chat-123")
    assert result["results"]["message"]["data"]["id"] == final["id"]


async def test_seed_request_with_all_parameters_streams_input_tokens_and_end(gateway: Any) -> None:
    # seeds/001 "request with all headers and parameters": an output_component and a tweak
    # for components this flow does not have are ignored, as Langflow ignores them.
    response = await gateway.post(
        "/api/v1/run/chat?stream=true",
        headers={**HEADERS, "accept": "application/json"},
        data="""{
"input_value": "Tell me a story",
"input_type": "chat",
"output_type": "chat",
"output_component": "chat_output",
"session_id": "chat-123",
"tweaks": {
"component_id": {
"parameter_name": "value"
}
}
}""",
    )
    assert response.status == 200
    events = frames(await response.read())
    user = events[0]
    assert user["event"] == "add_message"
    check_message(
        {k: v for k, v in user["data"].items() if k != "id"},
        text="Tell me a story",
        sender="User",
        session_id="chat-123",
    )
    assert user["data"]["properties"]["source"] == {
        "id": None,
        "display_name": None,
        "source": None,
    }
    reply = "You said: Tell me a story"
    assert "".join(e["data"]["chunk"] for e in events if e["event"] == "token") == reply
    assert [e["event"] for e in events[-2:]] == ["add_message", "end"]
    result = events[-1]["data"]["result"]
    assert result["outputs"][0]["inputs"] == {"input_value": "Tell me a story"}
    assert result["outputs"][0]["outputs"][0]["results"]["message"]["text"] == reply


async def test_stream_end_result_equals_the_plain_answer(gateway: Any) -> None:
    body = {"input_value": "ice cream", "session_id": "s-1"}
    plain = await (await gateway.post("/api/v1/run/agent", headers=HEADERS, json=body)).json()
    streamed = await gateway.post("/api/v1/run/agent?stream=true", headers=HEADERS, json=body)
    events = frames(await streamed.read())
    result = events[-1]["data"]["result"]

    def shape(answer: dict[str, Any]) -> Any:
        # Everything but the per-run ids and times is identical.
        [output] = answer["outputs"]
        [data] = output["outputs"]
        return answer["session_id"], output["inputs"], data["component_id"], data["outputs"]

    assert shape(result) == shape(plain)
    assert plain["outputs"][0]["outputs"][0]["results"]["message"]["text"] == (
        "This is a joke about ice cream and cats"
    )


@pytest.mark.parametrize("ref", ["agent", "joke", models.assistant_id("agent")])
async def test_steps_flow_by_id_endpoint_name_or_uuid_with_per_step_results(
    gateway: Any, ref: str
) -> None:
    response = await gateway.post(
        f"/api/v1/run/{ref}",
        headers=HEADERS,
        json={"input_value": "ice cream", "output_type": "debug"},
    )
    assert response.status == 200
    body = await response.json()
    results = body["outputs"][0]["outputs"]
    assert [r["component_id"] for r in results] == ["refine_topic", "generate_joke"]
    texts = [r["results"]["message"]["text"] for r in results]
    assert texts == ["ice cream and cats", "This is a joke about ice cream and cats"]
    for result, text in zip(results, texts, strict=True):
        check_result_data(
            result,
            text=text,
            component=result["component_id"],
            session=models.assistant_id("agent"),
        )
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    run = await finished_run(gateway, run_id)
    assert run["flow_id"] == "agent"
    assert run["values"] == {
        "input_value": "ice cream",
        "topic": "ice cream and cats",
        "joke": "This is a joke about ice cream and cats",
    }


async def test_output_component_selects_a_step(gateway: Any) -> None:
    body = {"input_value": "tea", "output_component": "refine_topic"}
    answer = await (await gateway.post("/api/v1/run/agent", headers=HEADERS, json=body)).json()
    [result] = answer["outputs"][0]["outputs"]
    assert (result["component_id"], result["results"]["message"]["text"]) == (
        "refine_topic",
        "tea and cats",
    )


async def test_tweaks_override_step_parameters_by_step_id(gateway: Any) -> None:
    body = {
        "input_value": "ice cream",
        "tweaks": {"generate_joke": {"template": "Why did {topic} cross the road?"}},
    }
    answer = await (await gateway.post("/api/v1/run/agent", headers=HEADERS, json=body)).json()
    text = answer["outputs"][0]["outputs"][0]["results"]["message"]["text"]
    assert text == "Why did ice cream and cats cross the road?"
    # A global tweak (a non-object value) reaches every step having that parameter.
    body = {"input_value": "x", "tweaks": {"template": "{topic}!"}}
    answer = await (await gateway.post("/api/v1/run/agent", headers=HEADERS, json=body)).json()
    assert answer["outputs"][0]["outputs"][0]["results"]["message"]["text"] == "x and cats!"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"input_value": 5}', "input_value: expected str, got int"),
        (b'{"input_type": "bogus"}', "input_type: expected one of chat, text, any, got 'bogus'"),
        (b'{"output_type": 3}', "output_type: expected str, got int"),
        (b'{"tweaks": "x"}', "tweaks: expected dict, got str"),
        (b'{"session_id": []}', "session_id: expected str, got list"),
        (b'{"tweaks": {"generate_joke": {"nope": 1}}}', "tweaks.generate_joke: unknown parameter"),
        (b'{"tweaks": {"generate_joke": "x"}}', "tweaks.generate_joke: expected an object"),
        (b'{"webhook": "ftp://example.com/hook"}', "webhook URL must use http or https"),
        (b'{"webhook": "http://169.254.169.254/"}', "webhook host blocked"),
        (b"{not json", "Invalid JSON in request body"),
        (b"[1, 2]", "Request body must be a JSON object"),
    ],
)
async def test_bad_input_is_422_with_a_detail_and_nothing_stored(
    gateway: Any, settings: Settings, body: bytes, detail: str
) -> None:
    response = await gateway.post("/api/v1/run/agent", headers=HEADERS, data=body)
    assert response.status == 422
    answer = await response.json()
    assert list(answer) == ["detail"]
    assert answer["detail"].startswith(detail)
    streamed = await gateway.post("/api/v1/run/agent?stream=true", headers=HEADERS, data=body)
    assert streamed.status == 422
    assert count_rows(settings, "runs") == 0


async def test_unknown_flow_is_404_and_bad_stream_flag_422(
    gateway: Any, settings: Settings
) -> None:
    response = await gateway.post("/api/v1/run/nope", headers=HEADERS, json={})
    assert (response.status, await response.json()) == (
        404,
        {"detail": "Flow identifier nope not found"},
    )
    response = await gateway.post("/api/v1/run/echo?stream=maybe", headers=HEADERS, json={})
    assert response.status == 422
    assert count_rows(settings, "runs") == 0


async def test_failing_flow_is_500_with_a_json_string_detail_or_a_stream_error(
    gateway: Any,
) -> None:
    response = await gateway.post("/api/v1/run/fail", headers=HEADERS, json={"input_value": "x"})
    assert response.status == 500
    detail = json.loads((await response.json())["detail"])
    assert list(detail) == ["message", "traceback", "description", "code", "suggestion"]
    assert detail["message"].startswith("this flow always fails")
    streamed = await gateway.post(
        "/api/v1/run/fail?stream=true", headers=HEADERS, json={"input_value": "x"}
    )
    events = frames(await streamed.read())
    assert [e["event"] for e in events] == ["add_message", "error"]
    assert list(events[-1]["data"]) == ["error"]
    assert events[-1]["data"]["error"].startswith("this flow always fails")


async def test_run_is_delivered_to_endpoints_and_its_own_webhook(
    gateway: Any, receiver: Receiver
) -> None:
    created = await gateway.post("/api/v1/endpoints", headers=HEADERS, json={"url": receiver.url})
    assert created.status == 201
    body = {"input_value": "ice cream", "webhook": receiver.url + "?per-run=1"}
    response = await gateway.post("/api/v1/run/agent", headers=HEADERS, json=body)
    assert response.status == 200
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    received = await receiver.wait_for(2)
    assert sorted("per-run=1" in r.path_qs for r in received) == [False, True]
    for request in received:
        payload = json.loads(request.body)
        assert payload["run_id"] == run_id
        assert payload["status"] == "success"
        assert payload["values"]["joke"] == "This is a joke about ice cream and cats"


async def test_client_leaving_the_stream_interrupts_the_run_and_it_is_delivered(
    gateway: Any, receiver: Receiver
) -> None:
    body = {"input_value": "wait", "webhook": receiver.url}
    response = await gateway.post("/api/v1/run/stall?stream=true", headers=HEADERS, json=body)
    assert response.status == 200
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    seen: list[str] = []
    async with asyncio.timeout(10):
        while "token" not in seen:
            seen.append(json.loads(await response.content.readuntil(b"\n\n"))["event"])
    assert seen == ["add_message", "add_message", "token"]
    response.close()  # the client goes away mid-stream

    run = await finished_run(gateway, run_id)
    assert run["status"] == "interrupted"
    assert run["error"] == {
        "error": "Interrupted",
        "message": "client disconnected from the stream",
    }
    [callback] = await receiver.wait_for(1)
    assert json.loads(callback.body)["status"] == "interrupted"

    async def delivered() -> Any:
        found = await (
            await gateway.get(f"/api/v1/deliveries?run_id={run_id}", headers=HEADERS)
        ).json()
        return found if found and found[0]["status"] == "succeeded" else None

    [delivery] = await eventually(delivered)
    assert delivery["event_type"] == "run.interrupted"


async def test_run_advanced_answers_one_output_per_input(gateway: Any) -> None:
    body = {
        "inputs": [
            {"components": [], "input_value": "tea"},
            {"input_value": "jam", "type": "chat"},
        ],
        "outputs": [],
        "tweaks": {},
        "stream": False,
    }
    response = await gateway.post("/api/v1/run/advanced/joke", headers=HEADERS, json=body)
    assert response.status == 200
    answer = await response.json()
    assert list(answer) == ["session_id", "outputs"]
    assert [o["inputs"] for o in answer["outputs"]] == [
        {"input_value": "tea"},
        {"input_value": "jam"},
    ]
    texts = [o["outputs"][0]["results"]["message"]["text"] for o in answer["outputs"]]
    assert texts == ["This is a joke about tea and cats", "This is a joke about jam and cats"]
    for output in answer["outputs"]:
        assert list(output["outputs"][0]) == RESULT_DATA_KEYS
    # Defaults: one input with an empty input_value, all output vertices.
    default = await (await gateway.post("/api/v1/run/advanced/echo", headers=HEADERS)).json()
    assert default["outputs"][0]["inputs"] == {"input_value": ""}


async def test_run_advanced_refuses_unknown_input_fields(gateway: Any, settings: Settings) -> None:
    body = {"inputs": [{"input_value": "x", "extra": 1}]}
    response = await gateway.post("/api/v1/run/advanced/echo", headers=HEADERS, json=body)
    assert response.status == 422
    assert (await response.json())["detail"].startswith("inputs[0]: unknown field(s) extra")
    failed = await gateway.post("/api/v1/run/advanced/fail", headers=HEADERS, json={})
    assert failed.status == 500
    assert (await failed.json())["detail"].startswith("this flow always fails")
    assert count_rows(settings, "runs") == 1
