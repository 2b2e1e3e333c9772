"""Langflow's JSON shapes, made from plain facts: a ``Message`` (as ``add_message`` and
``ResultData.results`` carry it), a build's ``end_vertex`` data and a ``ResultData``. Message
ids and timestamps come from the stored events (``Said``), so every read gives the same bytes.
``gateway.api.langflow_events`` decides when each is said."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from gateway import clock

Event = dict[str, Any]
_IDS = uuid.UUID("0b9a2f5e-54c3-4a5e-9d43-6c0a8a3f1d27")
TEXT_KEYS = ("message", "text", "output", "answer", "result")


def frame(event: Event) -> bytes:
    """One event on the wire: its JSON, then a blank line (no ``data:``, no ``id:``)."""
    return (json.dumps(event) + "\n\n").encode()


def lf_timestamp(moment: float) -> str:
    return clock.utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def message_id(run_id: str, tag: str) -> str:
    return str(uuid.uuid5(_IDS, f"{run_id}/{tag}"))


def text_of(value: Any) -> str:
    """A value as message text: a string as is, a dict's one text field, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        langflow = _langflow_answer(value)
        if langflow is not None:
            return langflow
        for key in TEXT_KEYS:
            if isinstance(value.get(key), str):
                text: str = value[key]
                return text
        if len(value) == 1 and isinstance(next(iter(value.values())), str):
            only: str = next(iter(value.values()))
            return only
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _langflow_answer(value: dict[str, Any]) -> str | None:
    """The text of a Langflow ``RunResponse`` (what a relay to a real Langflow answers)."""
    try:
        text = value["outputs"][0]["outputs"][0]["results"]["message"]["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def duration_text(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    return f"{seconds:.1f} seconds"


@dataclasses.dataclass
class Vertex:
    """A step (or the whole one-step flow) as the run went through it."""

    name: str
    started_at: float
    update: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw: Any = None
    ended_at: float | None = None
    valid: bool = True
    error: str | None = None

    @property
    def timedelta(self) -> float | None:
        if self.ended_at is None:
            return None
        return round(max(0.0, self.ended_at - self.started_at), 6)


@dataclasses.dataclass
class Said:
    """A message the run produced (its id, text, sender and time)."""

    id: str
    text: str
    sender: str
    timestamp: float
    vertex: str


@dataclasses.dataclass(frozen=True)
class Session:
    """Whose messages these are: the run, its Langflow session and flow."""

    run_id: str
    session_id: str
    flow_id: str
    flow_uuid: str


def message(
    session: Session,
    said: Said,
    *,
    user: bool = False,
    state: str = "complete",
    error: bool = False,
) -> dict[str, Any]:
    """Langflow's ``Message``, every key present."""
    sender_name = "User" if user else "AI"
    source = (
        {"id": None, "display_name": None, "source": None}
        if user
        else {"id": said.vertex, "display_name": said.vertex, "source": session.flow_id}
    )
    properties: dict[str, Any] = {
        "text_color": None,
        "background_color": None,
        "edited": False,
        "source": source,
        "icon": None,
        "allow_markdown": False,
        "positive_feedback": None,
        "state": state,
        "targets": [],
        "usage": None,
        "build_duration": None,
    }
    timestamp = lf_timestamp(said.timestamp)
    category = "error" if error else "message"
    blocks: list[Any] = []
    if error:
        blocks = [
            {
                "title": "Error",
                "contents": [
                    {
                        "type": "error",
                        "component": said.vertex,
                        "field": None,
                        "reason": said.text,
                        "solution": None,
                        "traceback": None,
                    }
                ],
                "allow_markdown": True,
                "media_url": None,
            }
        ]
    session_metadata = {"graph_run_id": session.run_id}
    return {
        "text_key": "text",
        "data": {
            "timestamp": timestamp,
            "sender": said.sender,
            "sender_name": sender_name,
            "session_id": session.session_id,
            "context_id": "",
            "text": said.text,
            "files": [],
            "error": error,
            "edit": False,
            "properties": properties,
            "category": category,
            "content_blocks": blocks,
            "session_metadata": session_metadata,
            "id": said.id,
            "flow_id": session.flow_uuid,
            "run_id": session.run_id,
            "duration": None,
        },
        "default_value": "",
        "sender": said.sender,
        "sender_name": sender_name,
        "files": [],
        "session_id": session.session_id,
        "context_id": "",
        "run_id": session.run_id,
        "timestamp": timestamp,
        "flow_id": session.flow_uuid,
        "error": error,
        "edit": False,
        "properties": properties,
        "category": category,
        "content_blocks": blocks,
        "duration": None,
        "session_metadata": session_metadata,
        "text": said.text,
    }


def add_message(
    session: Session, said: Said, *, user: bool = False, state: str = "complete"
) -> Event:
    data = message(session, said, user=user, state=state)
    data["id"] = said.id
    return {"event": "add_message", "data": data}


def error_message(session: Session, said: Said) -> dict[str, Any]:
    data = message(session, said, error=True)
    data["id"] = said.id
    return data


def artifacts(text: str) -> dict[str, Any]:
    return {
        "message": text,
        "sender": "Machine",
        "sender_name": "AI",
        "files": [],
        "type": "object",
    }


def end_vertex(
    session: Session, vertex: Vertex, said: Said, successors: list[str], *, stepped: bool
) -> dict[str, Any]:
    """A build's ``end_vertex`` data; ``said`` is the vertex's message."""
    terminal = not successors
    text = said.text
    if vertex.valid:
        results: dict[str, Any] = {"message": message(session, said)}
        outputs: dict[str, Any] = {"message": {"message": text, "type": "text"}}
    else:
        results = {}
        error = {"errorMessage": vertex.error or "", "stackTrace": ""}
        outputs = {"message": {"message": error, "type": "error"}}
    next_ids = successors if vertex.valid else []
    return {
        "build_data": {
            "id": vertex.name,
            "inactivated_vertices": [],
            "next_vertices_ids": next_ids,
            "top_level_vertices": next_ids,
            "valid": vertex.valid,
            "params": None,
            "data": {
                "results": results,
                "outputs": outputs,
                "logs": {"message": []},
                "message": artifacts(text) if vertex.valid else outputs["message"],
                "artifacts": artifacts(text) if vertex.valid else {},
                "timedelta": vertex.timedelta,
                "duration": duration_text(vertex.timedelta or 0.0),
                "used_frozen_result": False,
                "token_usage": None,
            },
            "timestamp": clock.isoformat(vertex.ended_at),
        },
        "output_meta": {
            "component_id": vertex.name,
            "display_name": vertex.name,
            "vertex_type": "Step" if stepped else "Flow",
            "is_output": terminal,
            "is_terminal": terminal,
            "output_types": ["Message"],
        },
    }


def result_data(session: Session, vertex: Vertex, said: Said) -> dict[str, Any]:
    """Langflow's ``ResultData`` for one vertex: every key, nulls included; ``said`` is the
    vertex's message."""
    vertex_name, text = vertex.name, said.text
    return {
        "results": {"message": message(session, said)},
        "artifacts": artifacts(text),
        "outputs": {"message": {"message": text, "type": "text"}},
        "logs": {"message": []},
        "messages": [
            {
                "message": text,
                "sender": "Machine",
                "sender_name": "AI",
                "session_id": session.session_id,
                "stream_url": None,
                "component_id": vertex_name,
                "files": [],
                "type": "text",
            }
        ],
        "timedelta": vertex.timedelta,
        "duration": None if vertex.timedelta is None else duration_text(vertex.timedelta),
        "component_display_name": vertex_name,
        "component_id": vertex_name,
        "used_frozen_result": False,
        "token_usage": None,
    }
