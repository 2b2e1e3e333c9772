"""Langflow's shapes, made from a run's stored events: the same answer on every read.

Runs store hookgate's own events (``values``, ``step_start``, ``updates``, ``token``,
``message``, ``custom``, ``run_end``); ``Translator`` turns them into what Langflow clients
read: the ``/run?stream=true`` events (``add_message``, ``token``, ``end {"result"}``,
``error``), the build events (``vertices_sorted``, ``build_start``, ``add_message``,
``token``, ``end_vertex``, ``end {"build_duration"}``, ``error``) and the ``RunResponse``
(``{"session_id", "outputs": [{"inputs", "outputs": [ResultData…]}]}``). Message ids and
timestamps come from the stored events, so a late or second reader gets identical bytes. The
JSON shapes themselves are made by ``langflow_shapes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from gateway import models
from gateway.api import langflow_shapes as shapes
from gateway.api.langflow_shapes import Event, Said, Vertex, message_id, text_of
from gateway.flows import Flow
from gateway.runs.events import RUN_END

Mode = Literal["run", "build"]


def input_text(run: models.Run) -> str | None:
    """The Langflow ``input_value`` of a run: given to /run or /build, or in a webhook body."""
    if "input_value" in run.kwargs:
        value = run.kwargs["input_value"]
        return value if isinstance(value, str) else None
    if isinstance(run.input, dict) and isinstance(run.input.get("input_value"), str):
        text: str = run.input["input_value"]
        return text
    return None


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
        self.session = shapes.Session(run.run_id, self.session_id, run.flow_id, self.flow_uuid)
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
        said = self._vertex_said(vertex)
        data = shapes.end_vertex(
            self.session, vertex, said, self._successors(vertex.name), stepped=self.stepped
        )
        return [{"event": "end_vertex", "data": data}]

    @property
    def build_duration(self) -> float:
        return round(sum(v.timedelta or 0.0 for v in self.vertices.values()), 6)

    def _successors(self, name: str) -> list[str]:
        if self.flow is None:
            return []
        return [v for v in self.flow.successors(name) if v in self.plan]

    def _vertex_said(self, vertex: Vertex) -> Said:
        """A vertex's message: the run's answer for the last one, else its output as text."""
        if vertex.name == self.plan[-1] and self.output_message is not None:
            return self.output_message
        at = vertex.ended_at or vertex.started_at
        text = text_of(vertex.raw)
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

    def _add_message(self, said: Said, *, user: bool = False, state: str = "complete") -> Event:
        return shapes.add_message(self.session, said, user=user, state=state)

    def _error_message(self, reason: str, at: float) -> dict[str, Any]:
        said = Said(
            message_id(self.run.run_id, "error"), reason, "Machine", at, self._vertex_name()
        )
        return shapes.error_message(self.session, said)

    def result_data(self, vertex_name: str) -> dict[str, Any]:
        """Langflow's ``ResultData`` for one vertex."""
        vertex = self.vertices.get(vertex_name) or Vertex(vertex_name, self.run.created_at)
        return shapes.result_data(self.session, vertex, self._vertex_said(vertex))

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
