"""LangGraph's stream modes from a run's stored events, checked as pure functions: the events
the step runner stores (``gateway/flows/steps.py``) go through ``ModeMapper`` and ``encode``,
and the bytes are compared with the Agent Server's captures (tests/data/*.raw)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import models
from gateway.runs import sse

SAMPLES = Path(__file__).resolve().parents[1] / "data"
NOW = 1_800_000_000.0
START = {"topic": "ice cream"}
REFINED = {"topic": "ice cream and cats"}
FINAL = {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}


def run(**kwargs: Any) -> models.Run:
    return models.Run(
        run_id="run-1",
        flow_id="agent",
        status=models.RunStatus.SUCCESS,
        input=START,
        kwargs=kwargs,
        metadata={},
        created_at=NOW,
        updated_at=NOW,
        thread_id="thread-1",
    )


def stored(*events: tuple[str, Any]) -> list[models.Event]:
    """Events as the store holds them: ids from 1, in order."""
    return [
        models.Event(index, "run-1", name, data, NOW + index)
        for index, (name, data) in enumerate(events, start=1)
    ]


AGENT_RUN = stored(
    ("values", START),
    ("step_start", {"step": "refine_topic", "index": 0, "steps": 2}),
    ("updates", {"refine_topic": {"topic": "ice cream and cats"}}),
    ("values", REFINED),
    ("step_start", {"step": "generate_joke", "index": 1, "steps": 2}),
    ("updates", {"generate_joke": {"joke": "This is a joke about ice cream and cats"}}),
    ("values", FINAL),
    ("run_end", {"status": "success", "output": FINAL, "error": None}),
)


def mapped(events: list[models.Event], modes: tuple[str, ...], **kwargs: Any) -> list[sse.Out]:
    mapper = sse.ModeMapper(run(**kwargs), modes)
    return [out for event in events for out in mapper.feed(event)]


def wire(outs: list[sse.Out], *, ids: bool = False) -> bytes:
    return b"".join(sse.encode(o.event, o.data, str(o.source_id) if ids else None) for o in outs)


def capture_after_metadata(name: str) -> bytes:
    """A capture's body without its first event (``metadata``, which the handler writes)."""
    _, _, body = (SAMPLES / name).read_bytes().partition(b"\r\n\r\n")
    _, _, rest = body.partition(b"\r\n\r\n")
    return rest


@pytest.mark.parametrize(
    ("capture", "modes"),
    [
        ("sse_updates_values.raw", ("updates", "values")),
        ("sse_stateless_all.raw", ("updates", "values", "messages-tuple")),
    ],
)
def test_the_agent_run_is_byte_for_byte_the_agent_servers(
    capture: str, modes: tuple[str, ...]
) -> None:
    assert wire(mapped(AGENT_RUN, modes)) == capture_after_metadata(capture)


def test_each_event_carries_the_id_of_the_stored_event_behind_it() -> None:
    """What ``Last-Event-ID`` resumes from."""
    outs = mapped(AGENT_RUN, ("updates", "values"))

    assert [o.source_id for o in outs] == [1, 3, 4, 6, 7]
    first = wire(outs[:1], ids=True)
    assert first == b'event: values\r\ndata: {"topic":"ice cream"}\r\nid: 1\r\n\r\n'


def test_only_the_requested_modes_are_written() -> None:
    assert [o.event for o in mapped(AGENT_RUN, ("updates",))] == ["updates", "updates"]
    assert [o.data for o in mapped(AGENT_RUN, ())] == [START, REFINED, FINAL]  # default: values


CHAT_RUN = stored(
    ("token", {"chunk": "You said: "}),
    ("token", {"chunk": "hi"}),
    ("message", {"text": "You said: hi"}),
    ("run_end", {"status": "success", "output": {"text": "You said: hi"}, "error": None}),
)


def test_messages_tuple_streams_each_chunk_once_with_its_metadata() -> None:
    outs = mapped(CHAT_RUN, ("messages-tuple",))

    assert [o.event for o in outs] == ["messages", "messages"]
    assert "".join(o.data[0]["content"] for o in outs) == "You said: hi"
    ids = {o.data[0]["id"] for o in outs}
    assert len(ids) == 1  # the chunks of one message share its id
    for chunk, metadata in (o.data for o in outs):
        assert chunk["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "agent"
        assert metadata["run_id"] == "run-1"


def test_messages_v1_accumulates_partials_then_completes() -> None:
    outs = mapped(CHAT_RUN, ("messages",))

    assert [o.event for o in outs] == [
        "messages/metadata",
        "messages/partial",
        "messages/partial",
        "messages/complete",
    ]
    assert [o.data[0]["content"] for o in outs[1:]] == [
        "You said: ",
        "You said: hi",
        "You said: hi",
    ]


def test_a_subgraphs_events_reach_only_a_client_that_asked_for_them() -> None:
    events = stored(("values|child:1", {"x": 1}), ("values", {"x": 2}))

    assert [o.event for o in mapped(events, ("values",))] == ["values"]
    assert [o.event for o in mapped(events, ("values",), subgraphs=True)] == [
        "values|child:1",
        "values",
    ]


def test_a_failed_run_ends_with_an_error_event() -> None:
    error = {"error": "RuntimeError", "message": "the flow broke"}
    events = stored(("run_end", {"status": "error", "output": None, "error": error}))

    assert wire(mapped(events, ("values",))) == sse.encode("error", error)


def test_a_flow_without_steps_shows_its_output_as_its_values() -> None:
    events = stored(("run_end", {"status": "success", "output": {"n": 1}, "error": None}))

    assert [(o.event, o.data) for o in mapped(events, ("values",))] == [("values", {"n": 1})]


def test_a_line_break_cannot_forge_a_field() -> None:
    assert sse.encode("values\r\nid: 9", {"a": "b\nc"}, "1\n2") == (
        b'event: valuesid: 9\r\ndata: {"a":"b\\nc"}\r\nid: 12\r\n\r\n'
    )
