"""LangGraph's stream modes over hookgate's run events, written as the Agent Server writes SSE.

A run's stored events (``values``, ``step_start``, ``updates``, ``token``, ``message``,
``custom``, ``run_end``) are turned into the events of the requested stream modes by one
``ModeMapper`` per stream. Every SSE event carries the id of the stored event it came from, so
``Last-Event-ID`` resumes any run: the mapper replays the log up to that id silently (to rebuild
message accumulation) and writes only what follows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from gateway import models

StreamMode = Literal[
    "values",
    "messages",
    "messages-tuple",
    "tasks",
    "checkpoints",
    "updates",
    "events",
    "debug",
    "custom",
]
STREAM_MODES: tuple[str, ...] = get_args(StreamMode)
DEFAULT_MODES = ("values",)
HEARTBEAT = b": heartbeat\r\n\r\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode(event: str, data: Any, event_id: str | None = None) -> bytes:
    """``event:``, ``data:``, optional ``id:``, blank line; CRLF, as langgraph-api's json_to_sse."""
    lines = [f"event: {_one_line(event)}", f"data: {dumps(data)}"]
    if event_id is not None:
        lines.append(f"id: {_one_line(event_id)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "")


@dataclasses.dataclass(frozen=True)
class Out:
    """One SSE event to write, with the id of the stored event behind it."""

    event: str
    data: Any
    source_id: int


def mode_matches(event: str, modes: Sequence[str]) -> bool:
    """langgraph-runtime-inmem's rule: the full name, its base before ``|``, or any messages mode."""
    if not modes:
        return True
    base = event.split("|", 1)[0]
    if event in modes or base in modes:
        return True
    return event.startswith("messages") and ("messages" in modes or "messages-tuple" in modes)


class ModeMapper:
    """Turns one run's stored events into the SSE events of the requested stream modes."""

    def __init__(self, run: models.Run, modes: Sequence[str]) -> None:
        self.run = run
        self.modes = tuple(modes) or DEFAULT_MODES
        self.step = ""
        self.index = 0
        self.seen_values = False
        self.message_count = 0
        self.partial: dict[str, Any] | None = None
        self.last_values: Any = None
        self.subgraphs = bool(run.kwargs.get("subgraphs"))

    def wants(self, mode: str) -> bool:
        return mode in self.modes

    def feed(self, event: models.Event) -> list[Out]:
        name, _, ns = event.event.partition("|")
        if ns and not self.subgraphs:
            return []  # a subgraph's event, for a client that did not ask for them
        suffix = f"|{ns}" if ns else ""
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return []
        outs: list[tuple[str, Any]] = handler(event.data, suffix)
        return [Out(name, data, event.id) for name, data in outs]

    # one handler per stored event

    def _on_values(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        outs: list[tuple[str, Any]] = []
        if not suffix:
            self.seen_values = True
            self.last_values = data
        if self.wants("values") or (suffix and "values" in self.modes):
            outs.append((f"values{suffix}", data))
        if self.wants("debug"):
            outs.append((f"debug{suffix}", self._debug("checkpoint", {"values": data})))
        if self.wants("checkpoints"):
            outs.append((f"checkpoints{suffix}", self._checkpoint(data)))
        return outs

    def _on_step_start(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        if isinstance(data, dict):
            self.step = str(data.get("step", ""))
            self.index = int(data.get("index", self.index) or 0)
        task = {
            "id": self._task_id(),
            "name": self.step,
            "input": self.last_values,
            "triggers": [f"branch:to:{self.step}"],
        }
        outs: list[tuple[str, Any]] = []
        if self.wants("tasks"):
            outs.append((f"tasks{suffix}", task))
        if self.wants("debug"):
            outs.append((f"debug{suffix}", self._debug("task", task)))
        return outs

    def _on_updates(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        outs: list[tuple[str, Any]] = []
        if self.wants("updates"):
            outs.append((f"updates{suffix}", data))
        if isinstance(data, dict) and (self.wants("tasks") or self.wants("debug")):
            for node, result in data.items():
                task = {
                    "id": self._task_id(),
                    "name": node,
                    "error": None,
                    "interrupts": [],
                    "result": result,
                }
                if self.wants("tasks"):
                    outs.append((f"tasks{suffix}", task))
                if self.wants("debug"):
                    outs.append((f"debug{suffix}", self._debug("task_result", task)))
        return outs

    def _on_custom(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        return [(f"custom{suffix}", data)] if self.wants("custom") else []

    def _on_token(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        chunk = str(data.get("chunk", "")) if isinstance(data, dict) else str(data)
        outs: list[tuple[str, Any]] = []
        fresh = self.partial is None
        if self.partial is None:
            self.message_count += 1
            self.partial = _ai_message(self._message_id(), "", chunk=True)
        self.partial["content"] += chunk
        if self.wants("messages-tuple"):
            piece = {**_ai_message(self._message_id(), chunk, chunk=True)}
            outs.append((f"messages{suffix}", [piece, self._message_metadata()]))
        if self.wants("messages"):
            if fresh:
                outs.append(self._metadata_event())
            outs.append(("messages/partial", [dict(self.partial)]))
        return outs

    def _on_message(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        text = str(data.get("text", "")) if isinstance(data, dict) else str(data)
        streamed = self.partial is not None
        if not streamed:
            self.message_count += 1
        self.partial = None
        message = _ai_message(self._message_id(), text, chunk=False)
        outs: list[tuple[str, Any]] = []
        if self.wants("messages-tuple") and not streamed:
            outs.append((f"messages{suffix}", [message, self._message_metadata()]))
        if self.wants("messages"):
            if not streamed:
                outs.append(self._metadata_event())
            outs.append(("messages/complete", [message]))
        return outs

    def _on_run_end(self, data: Any, suffix: str) -> list[tuple[str, Any]]:
        status = data.get("status") if isinstance(data, dict) else None
        outs: list[tuple[str, Any]] = []
        output = data.get("output") if isinstance(data, dict) else None
        if status == "success" and not self.seen_values and output is not None:
            # A flow without steps: its output is the one state it had.
            outs.extend(self._on_values(output, ""))
        if status == "error":
            error = data.get("error") if isinstance(data, dict) else None
            outs.append(("error", error or {"error": "Error", "message": "run failed"}))
        return outs

    # shapes

    def _task_id(self) -> str:
        return f"{self.run.run_id}:{self.index}:{self.step}"

    def _message_id(self) -> str:
        return f"run-{self.run.run_id}-{self.message_count}"

    def _message_metadata(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "thread_id": self.run.thread_id,
            "graph_id": self.run.flow_id,
            "assistant_id": self.run.assistant_id,
            "langgraph_step": self.index + 1,
            "langgraph_node": self.step or self.run.flow_id,
        }

    def _metadata_event(self) -> tuple[str, Any]:
        return ("messages/metadata", {self._message_id(): {"metadata": self._message_metadata()}})

    def _debug(self, kind: str, payload: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "step": self.index,
            "timestamp": datetime.now(UTC).isoformat(),
            "payload": payload,
        }

    def _checkpoint(self, values: Any) -> dict[str, Any]:
        return {
            "config": {"configurable": {"thread_id": self.run.thread_id, "checkpoint_ns": ""}},
            "metadata": {"source": "loop", "step": self.index, "run_id": self.run.run_id},
            "values": values,
            "next": [],
            "parent_config": None,
            "tasks": [],
        }


def _ai_message(message_id: str, content: str, *, chunk: bool) -> dict[str, Any]:
    return {
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": "AIMessageChunk" if chunk else "ai",
        "name": None,
        "id": message_id,
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": None,
    }


def parse_modes(value: Any, *, field: str = "stream_mode") -> tuple[str, ...]:
    """A mode or a list of modes; ``None`` gives the default. Raises ValueError on anything else."""
    if value is None:
        return DEFAULT_MODES
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{field}: expected a string or a list of strings")
    modes = []
    for item in items:
        if item not in STREAM_MODES:
            raise ValueError(
                f"{field}: invalid stream mode {item!r}; expected any of {', '.join(STREAM_MODES)}"
            )
        modes.append(str(item))
    return tuple(dict.fromkeys(modes)) or DEFAULT_MODES
