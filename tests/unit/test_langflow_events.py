"""Langflow's stream and build events from a run's stored events, checked as pure functions
against the real Langflow capture (tests/data/langflow-stream-sample.txt): the same events, the
same keys in the same order, the same framing, and the same bytes for every reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway import models
from gateway.api import langflow_events
from gateway.api.langflow_events import Translator
from gateway.api.langflow_shapes import frame

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "langflow-stream-sample.txt"
CREATED = 1_800_000_000.0


def run(**kwargs: Any) -> models.Run:
    return models.Run(
        run_id="0941cb94-8932-400f-b38f-78827879cbc0",
        flow_id="echo",
        status=models.RunStatus.SUCCESS,
        input={"input_value": "hi"},
        kwargs={"input_value": "hi", **kwargs},
        metadata={},
        created_at=CREATED,
        updated_at=CREATED,
    )


def stored(*events: tuple[str, Any]) -> list[models.Event]:
    return [
        models.Event(index, "run-1", name, data, CREATED + index / 10)
        for index, (name, data) in enumerate(events, start=1)
    ]


ECHO = stored(("run_end", {"status": "success", "output": "hi", "error": None}))


def events_of(mode: langflow_events.Mode, events: list[models.Event]) -> list[dict[str, Any]]:
    translator = Translator(run(), None, mode)
    return [*translator.start(), *(out for event in events for out in translator.feed(event))]


# Fields reference/langflow-api.md says "may be null or populated" (the capture has null).
EITHER_NULL_OR_SET = {"timedelta", "duration", "token_usage"}


def shape(value: Any) -> Any:
    """The keys, their order and the value types, without the values."""
    if isinstance(value, dict):
        return [
            (key, "null or set" if key in EITHER_NULL_OR_SET else shape(item))
            for key, item in value.items()
        ]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def sample_events() -> list[dict[str, Any]]:
    return [json.loads(chunk) for chunk in SAMPLE.read_bytes()[:-2].split(b"\n\n")]


def test_a_run_streams_langflows_events_in_langflows_shapes() -> None:
    ours = events_of("run", ECHO)
    theirs = sample_events()

    assert [e["event"] for e in ours] == [e["event"] for e in theirs]
    for mine, real in zip(ours, theirs, strict=True):
        assert shape(mine) == shape(real), mine["event"]
    user, machine, end = ours
    assert (user["data"]["sender"], user["data"]["text"]) == ("User", "hi")
    assert (machine["data"]["sender"], machine["data"]["text"]) == ("Machine", "hi")
    assert end["data"]["result"]["outputs"][0]["inputs"] == {"input_value": "hi"}


def test_each_event_is_its_json_and_a_blank_line() -> None:
    for event in events_of("run", ECHO):
        assert frame(event) == json.dumps(event).encode() + b"\n\n"
    assert SAMPLE.read_bytes() == b"".join(frame(e) for e in sample_events())


def test_every_reader_gets_the_same_bytes() -> None:
    """Ids and timestamps come from the stored events: a late or second reader sees the same."""
    first = b"".join(frame(e) for e in events_of("run", ECHO))
    again = b"".join(frame(e) for e in events_of("run", ECHO))

    assert first == again


def test_tokens_stream_into_the_message_they_build() -> None:
    events = stored(
        ("token", {"chunk": "You said: "}),
        ("token", {"chunk": "hi"}),
        ("message", {"text": "You said: hi"}),
        ("run_end", {"status": "success", "output": {"text": "You said: hi"}, "error": None}),
    )

    _, partial, first, second, complete, end = events_of("run", events)

    assert partial["event"] == "add_message"
    assert partial["data"]["properties"]["state"] == "partial"
    assert [first["data"]["chunk"], second["data"]["chunk"]] == ["You said: ", "hi"]
    message_id = partial["data"]["id"]
    assert first["data"]["id"] == second["data"]["id"] == complete["data"]["id"] == message_id
    assert complete["data"]["text"] == "You said: hi"
    assert end["event"] == "end"


def test_a_failed_run_streams_one_error_event_with_its_message() -> None:
    error = {"error": "RuntimeError", "message": "the flow broke"}
    events = stored(("run_end", {"status": "error", "output": None, "error": error}))

    assert events_of("run", events)[1:] == [{"event": "error", "data": {"error": "the flow broke"}}]


def test_a_build_plans_runs_and_ends_its_vertex() -> None:
    built = events_of("build", ECHO)

    assert [e["event"] for e in built] == [
        "vertices_sorted",
        "build_start",
        "add_message",
        "add_message",
        "end_vertex",
        "end",
    ]
    assert built[0]["data"] == {"ids": ["echo"], "to_run": ["echo"]}
    vertex = built[4]["data"]["build_data"]
    assert (vertex["id"], vertex["valid"]) == ("echo", True)
    assert vertex["data"]["outputs"] == {"message": {"message": "hi", "type": "text"}}
    assert built[5]["data"] == {"build_duration": 0.1}  # from the run's start to its end event


def test_a_failed_build_marks_its_vertex_invalid() -> None:
    error = {"error": "RuntimeError", "message": "the flow broke"}
    events = stored(("run_end", {"status": "error", "output": None, "error": error}))

    *_, end_vertex, end = events_of("build", events)

    assert end_vertex["data"]["build_data"]["valid"] is False
    assert end_vertex["data"]["build_data"]["data"]["outputs"]["message"] == {
        "message": {"errorMessage": "the flow broke", "stackTrace": ""},
        "type": "error",
    }
    assert end["event"] == "end"
