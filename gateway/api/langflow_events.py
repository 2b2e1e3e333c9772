"""Langflow's shapes, made from a run's stored events: the same answer on every read.

Runs store hookgate's own events (``values``, ``step_start``, ``updates``, ``token``,
``message``, ``custom``, ``run_end``); ``Translator`` turns them into what Langflow clients
read: the ``/run?stream=true`` events (``add_message``, ``token``, ``end {"result"}``,
``error``), the build events (``vertices_sorted``, ``build_start``, ``add_message``,
``token``, ``end_vertex``, ``end {"build_duration"}``, ``error``) and the ``RunResponse``
(``{"session_id", "outputs": [{"inputs", "outputs": [ResultData…]}]}``). Message ids and
timestamps come from the stored events, so a late or second reader gets identical bytes.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from gateway import clock, models
from gateway.flows import Flow
from gateway.runs.events import RUN_END

Mode = Literal["run", "build"]
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


def input_text(run: models.Run) -> str | None:
    """The Langflow ``input_value`` of a run: given to /run or /build, or in a webhook body."""
    if "input_value" in run.kwargs:
        value = run.kwargs["input_value"]
        return value if isinstance(value, str) else None
    if isinstance(run.input, dict) and isinstance(run.input.get("input_value"), str):
        text: str = run.input["input_value"]
        return text
    return None


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


class Translator:
    """Feeds on one run's stored events in order; returns Langflow events for each."""

    def __init__(self, run: models.Run, flow: Flow | None, mode: Mode) -> None:
        self.run = run
        self.mode = mode
        self.flow_id = run.flow_id
        self.flow_uuid = models.assistant_id(run.flow_id)
        session = run.kwargs.get("session_id")
        self.session_id = session if isinstance(session, str) and session else self.flow_uuid
        self.input_value = input_text(run)
        start, stop = run.kwargs.get("start_step"), run.kwargs.get("stop_step")
        try:
            self.plan = flow.plan(start, stop) if flow else (run.flow_id,)
        except ValueError:
            self.plan = flow.vertices if flow else (run.flow_id,)
        self.flow = flow
        self.stepped = bool(flow and flow.steps)
        self.vertices: dict[str, Vertex] = {}
        self.current: Vertex | None = None
        self.streaming: str | None = None
        self.said: list[Said] = []
        self.output: Any = None
        self.output_message: Said | None = None
        self.status: str | None = None
        self.error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status is not None

    # -- the event stream -------------------------------------------------------------------

    def start(self) -> list[Event]:
        """What comes before any stored event: the build plan, the input message."""
        events: list[Event] = []
        if self.mode == "build":
            first = self.flow.first_layer(self.plan) if self.flow else self.plan
            events.append(
                {
                    "event": "vertices_sorted",
                    "data": {"ids": list(first), "to_run": list(self.plan)},
                }
            )
            events.append({"event": "build_start", "data": {}})
        if not self.stepped:
            self.current = self._open(self.plan[0], self.run.created_at)
        if self.input_value is not None:
            said = Said(
                message_id(self.run.run_id, "input"),
                self.input_value,
                "User",
                self.run.created_at,
                self.plan[0],
            )
            events.append(self._add_message(said, user=True))
        return events

    def feed(self, event: models.Event) -> list[Event]:
        if self.finished:
            return []
        handler = getattr(self, f"_on_{event.event}", None)
        if handler is None:
            return []
        result: list[Event] = handler(event)
        return result

    def end_from(self, run: models.Run | None) -> list[Event]:
        """The end of a run whose ``run_end`` event the log does not hold (yet): a reader can
        catch up between the run's final write and that event, or the event was lost in a crash."""
        if self.finished or run is None or not run.status.is_final:
            return []
        data = {"status": run.status.value, "output": run.output, "error": run.error}
        moment = run.ended_at or run.updated_at
        return self.feed(models.Event(0, run.run_id, RUN_END, data, moment))

    def feed_all(self, events: Iterable[models.Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            out.extend(self.feed(event))
        return out

    def _on_step_start(self, event: models.Event) -> list[Event]:
        events = self._close(event.created_at)
        self.current = self._open(str(event.data.get("step")), event.created_at)
        return events

    def _on_updates(self, event: models.Event) -> list[Event]:
        if self.current is not None and isinstance(event.data, dict):
            for update in event.data.values():
                if isinstance(update, dict):
                    self.current.update.update(update)
            self.current.raw = self.current.update
        return []

    def _on_token(self, event: models.Event) -> list[Event]:
        chunk = event.data.get("chunk", "") if isinstance(event.data, dict) else str(event.data)
        events: list[Event] = []
        if self.streaming is None:
            self.streaming = message_id(self.run.run_id, f"event-{event.id}")
            partial = Said(self.streaming, "", "Machine", event.created_at, self._vertex_name())
            events.append(self._add_message(partial, state="partial"))
        events.append({"event": "token", "data": {"chunk": chunk, "id": self.streaming}})
        return events

    def _on_message(self, event: models.Event) -> list[Event]:
        data = event.data if isinstance(event.data, dict) else {"text": str(event.data)}
        sender = str(data.get("sender") or "Machine")
        said = Said(
            self.streaming or message_id(self.run.run_id, f"event-{event.id}"),
            str(data.get("text", "")),
            sender,
            event.created_at,
            self._vertex_name(),
        )
        self.streaming = None
        if sender != "User":
            self.said.append(said)
        return [self._add_message(said, user=sender == "User")]

    def _on_run_end(self, event: models.Event) -> list[Event]:
        data = event.data if isinstance(event.data, dict) else {}
        self.status = str(data.get("status") or "error")
        self.output = data.get("output")
        self.error = data.get("error") if isinstance(data.get("error"), dict) else None
        events: list[Event] = []
        if self.status == "success":
            if self.current is not None and not self.stepped:
                self.current.raw = self.output
            text = self._answer()
            last = self.said[-1] if self.said else None
            if last is not None and last.text == text:
                self.output_message = last
            else:
                self.output_message = Said(
                    self.streaming or message_id(self.run.run_id, "output"),
                    text,
                    "Machine",
                    event.created_at,
                    self.plan[-1],
                )
                events.append(self._add_message(self.output_message))
            events.extend(self._close(event.created_at))
            if self.mode == "build":
                events.append({"event": "end", "data": {"build_duration": self.build_duration}})
            else:
                events.append({"event": "end", "data": {"result": self.response()}})
            return events
        reason = self.error_message()
        if self.mode == "run":
            return [{"event": "error", "data": {"error": reason}}]
        if self.status == "error":
            if self.current is not None:
                self.current.valid, self.current.error = False, reason
            events.extend(self._close(event.created_at))
            events.append({"event": "end", "data": {"build_duration": self.build_duration}})
        elif self.status == "interrupted":
            events.extend(self._close(event.created_at, emit=False))
            events.append({"event": "end", "data": {}})
        else:
            events.append({"event": "error", "data": self._error_message(reason, event.created_at)})
        return events

    # -- vertices ---------------------------------------------------------------------------

    def _vertex_name(self) -> str:
        return self.current.name if self.current is not None else self.plan[0]

    def _open(self, name: str, at: float) -> Vertex:
        vertex = Vertex(name, at)
        self.vertices[name] = vertex
        return vertex

    def _close(self, at: float, *, emit: bool = True) -> list[Event]:
        vertex, self.current = self.current, None
        if vertex is None:
            return []
        vertex.ended_at = at
        if not emit or self.mode != "build":
            return []
        return [{"event": "end_vertex", "data": self._end_vertex(vertex)}]

    @property
    def build_duration(self) -> float:
        return round(sum(v.timedelta or 0.0 for v in self.vertices.values()), 6)

    def _successors(self, name: str) -> list[str]:
        if self.flow is None:
            return []
        return [v for v in self.flow.successors(name) if v in self.plan]

    def _vertex_text(self, vertex: Vertex) -> str:
        if vertex.name == self.plan[-1] and self.output_message is not None:
            return self.output_message.text
        return text_of(vertex.raw)

    def _end_vertex(self, vertex: Vertex) -> dict[str, Any]:
        terminal = not self._successors(vertex.name)
        text = self._vertex_text(vertex)
        if vertex.valid:
            message = self._vertex_message(vertex, text)
            results: dict[str, Any] = {"message": self._message(message)}
            outputs: dict[str, Any] = {"message": {"message": text, "type": "text"}}
        else:
            results = {}
            error = {"errorMessage": vertex.error or "", "stackTrace": ""}
            outputs = {"message": {"message": error, "type": "error"}}
        next_ids = self._successors(vertex.name) if vertex.valid else []
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
                    "message": self._artifacts(text) if vertex.valid else outputs["message"],
                    "artifacts": self._artifacts(text) if vertex.valid else {},
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
                "vertex_type": "Step" if self.stepped else "Flow",
                "is_output": terminal,
                "is_terminal": terminal,
                "output_types": ["Message"],
            },
        }

    def _vertex_message(self, vertex: Vertex, text: str) -> Said:
        if vertex.name == self.plan[-1] and self.output_message is not None:
            return self.output_message
        at = vertex.ended_at or vertex.started_at
        return Said(
            message_id(self.run.run_id, f"vertex-{vertex.name}"), text, "Machine", at, vertex.name
        )

    def _answer(self) -> str:
        """The run's answer: its output's text, else the last message it sent."""
        if self.stepped:
            last = self.vertices.get(self.plan[-1])
            if last is not None and last.update:
                return text_of(last.update)
        if self.output is None and self.said:
            return self.said[-1].text
        return text_of(self.output)

    def error_message(self) -> str:
        if self.error and self.error.get("message"):
            return str(self.error["message"])
        return f"run ended as {self.status}"

    # -- shapes -----------------------------------------------------------------------------

    def _message(
        self, said: Said, *, user: bool = False, state: str = "complete", error: bool = False
    ) -> dict[str, Any]:
        sender_name = "User" if user else "AI"
        source = (
            {"id": None, "display_name": None, "source": None}
            if user
            else {"id": said.vertex, "display_name": said.vertex, "source": self.flow_id}
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
        session_metadata = {"graph_run_id": self.run.run_id}
        return {
            "text_key": "text",
            "data": {
                "timestamp": timestamp,
                "sender": said.sender,
                "sender_name": sender_name,
                "session_id": self.session_id,
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
                "flow_id": self.flow_uuid,
                "run_id": self.run.run_id,
                "duration": None,
            },
            "default_value": "",
            "sender": said.sender,
            "sender_name": sender_name,
            "files": [],
            "session_id": self.session_id,
            "context_id": "",
            "run_id": self.run.run_id,
            "timestamp": timestamp,
            "flow_id": self.flow_uuid,
            "error": error,
            "edit": False,
            "properties": properties,
            "category": category,
            "content_blocks": blocks,
            "duration": None,
            "session_metadata": session_metadata,
            "text": said.text,
        }

    def _add_message(self, said: Said, *, user: bool = False, state: str = "complete") -> Event:
        data = self._message(said, user=user, state=state)
        data["id"] = said.id
        return {"event": "add_message", "data": data}

    def _error_message(self, reason: str, at: float) -> dict[str, Any]:
        said = Said(
            message_id(self.run.run_id, "error"), reason, "Machine", at, self._vertex_name()
        )
        data = self._message(said, error=True)
        data["id"] = said.id
        return data

    def _artifacts(self, text: str) -> dict[str, Any]:
        return {
            "message": text,
            "sender": "Machine",
            "sender_name": "AI",
            "files": [],
            "type": "object",
        }

    def result_data(self, vertex_name: str) -> dict[str, Any]:
        """Langflow's ``ResultData`` for one vertex: every key, nulls included."""
        vertex = self.vertices.get(vertex_name) or Vertex(vertex_name, self.run.created_at)
        text = self._vertex_text(vertex)
        said = self._vertex_message(vertex, text)
        return {
            "results": {"message": self._message(said)},
            "artifacts": self._artifacts(text),
            "outputs": {"message": {"message": text, "type": "text"}},
            "logs": {"message": []},
            "messages": [
                {
                    "message": text,
                    "sender": "Machine",
                    "sender_name": "AI",
                    "session_id": self.session_id,
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

    def selected(
        self, output_type: str = "chat", output_component: str = "", outputs: Iterable[str] = ()
    ) -> list[str]:
        """The vertices whose results a ``RunResponse`` shows (Langflow §2.2)."""
        ran = [v for v in self.plan if v in self.vertices]
        wanted = [output_component] if output_component else list(outputs)
        if output_type == "debug" and not wanted:
            return ran
        chosen = [v for v in ran if v in wanted]
        if chosen:
            return chosen
        return [v for v in ran if not self._successors(v)] or ran[-1:]

    def run_outputs(self, selected: list[str]) -> dict[str, Any]:
        inputs = {} if self.input_value is None else {"input_value": self.input_value}
        return {"inputs": inputs, "outputs": [self.result_data(v) for v in selected]}

    def response(self) -> dict[str, Any]:
        """The ``RunResponse`` of /run, with the selection the run was started with."""
        options = self.run.kwargs.get("langflow") or {}
        selected = self.selected(
            str(options.get("output_type") or "chat"), str(options.get("output_component") or "")
        )
        return {"session_id": self.session_id, "outputs": [self.run_outputs(selected)]}


def translate(
    run: models.Run, flow: Flow | None, mode: Mode, events: Iterable[models.Event]
) -> Translator:
    """A translator that has read ``events`` (convenience for whole-run answers)."""
    translator = Translator(run, flow, mode)
    translator.start()
    translator.feed_all(events)
    return translator
