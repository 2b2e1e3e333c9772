"""LangGraph compiled graphs as flows (optional extra ``hookgate[langgraph]``).

A compiled ``StateGraph`` named in config runs natively: ``astream`` with LangGraph's own
stream modes, mapped onto hookgate's run events (``values``, ``step_start`` + ``updates``,
``token``/``message``, ``custom``; subgraph events keep LangGraph's ``|<ns>`` suffix), so
every LangGraph stream mode, resumption and webhook works as for any other flow.

Thread state is kept by LangGraph's own checkpointer: the graph's, if it was compiled with
one, else ``langgraph-checkpoint-sqlite``'s ``AsyncSqliteSaver`` on the file named by
``GATEWAY_LANGGRAPH_CHECKPOINTS`` (in memory when unset). The run's ``thread_id`` comes from
its ``config.configurable``, as LangGraph expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from typing import Any

CHECKPOINTS_ENV = "GATEWAY_LANGGRAPH_CHECKPOINTS"


def is_compiled_graph(obj: Any) -> bool:
    return callable(getattr(obj, "astream", None)) and callable(getattr(obj, "get_graph", None))


class _Checkpointer:
    """One ``AsyncSqliteSaver`` per event loop (its connection belongs to one), opened on use."""

    def __init__(self) -> None:
        self._savers: dict[
            int, tuple[asyncio.AbstractEventLoop, Any, contextlib.AsyncExitStack]
        ] = {}

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        for key, (owner, _, _) in list(self._savers.items()):
            if owner.is_closed():
                del self._savers[key]
        entry = self._savers.get(id(loop))
        if entry is None or entry[0] is not loop:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            path = os.environ.get(CHECKPOINTS_ENV) or ":memory:"
            stack = contextlib.AsyncExitStack()
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(path))
            entry = self._savers[id(loop)] = (loop, saver, stack)  # the stack keeps it open
        return entry[1]


_checkpointer = _Checkpointer()


class GraphFlow:
    """Its bound ``run`` is what the ``Flow`` calls: ``(input, context) -> output``."""

    def __init__(self, flow_id: str, graph: Any) -> None:
        self.flow_id = flow_id
        self.graph = graph
        self.__doc__ = (getattr(graph, "__doc__", None) or "").strip() or (
            f"LangGraph graph {getattr(graph, 'name', flow_id)}"
        )

    async def _graph(self) -> Any:
        if getattr(self.graph, "checkpointer", None):
            return self.graph
        return self.graph.copy(update={"checkpointer": await _checkpointer.get()})

    async def run(self, value: Any, context: Any) -> Any:
        kwargs = getattr(context, "kwargs", {}) or {}
        raw_config = kwargs.get("config") if isinstance(kwargs, dict) else None
        config: dict[str, Any] = dict(raw_config) if isinstance(raw_config, dict) else {}
        configurable = dict(config.get("configurable") or {})
        configurable.setdefault("thread_id", context.run_id)
        config["configurable"] = configurable
        graph = await self._graph()
        command = kwargs.get("command") if isinstance(kwargs, dict) else None
        if isinstance(command, dict) and command:
            from langgraph.types import Command

            value = Command(**{k: v for k, v in command.items() if v is not None})
        steps = list(getattr(graph, "nodes", {}) or [])
        index = 0
        last: Any = None
        messages = _Messages(context)
        async for ns, mode, chunk in graph.astream(
            value,
            config,
            stream_mode=["values", "updates", "custom", "messages"],
            subgraphs=True,
        ):
            suffix = "|" + "|".join(ns) if ns else ""
            if mode == "values":
                if not ns:
                    last = chunk
                await context.emit("values" + suffix, _jsonable(chunk))
            elif mode == "updates":
                for node in chunk or {}:
                    if not ns:
                        await context.emit(
                            "step_start", {"step": node, "index": index, "steps": steps}
                        )
                        index += 1
                await context.emit("updates" + suffix, _jsonable(chunk))
            elif mode == "custom":
                await context.emit("custom" + suffix, _jsonable(chunk))
            elif mode == "messages":
                await messages.add(chunk[0])
        return _jsonable(last)

    def graph_json(self) -> dict[str, Any]:
        drawn = self.graph.get_graph()
        result: dict[str, Any] = drawn.to_json()
        return result

    def schemas_json(self) -> dict[str, Any]:
        def schema(getter: str) -> Any:
            try:
                return getattr(self.graph, getter)().model_json_schema()
            except Exception:  # noqa: BLE001 - a schema that cannot be drawn is left out
                return None

        return {
            "input_schema": schema("get_input_schema"),
            "output_schema": schema("get_output_schema"),
            "state_schema": schema("get_input_schema"),
            "config_schema": schema("get_config_schema"),
            "context_schema": None,
        }


class _Messages:
    """LangGraph's ``messages`` mode as run events: a chat model's chunks are tokens, a whole
    message is a message. LangGraph sends no whole message at the end of a streamed one, so
    the next message (another id) is what ends it: it is completed first, with its text."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.streaming: tuple[Any, str] | None = None  # the streamed message's id, text so far

    async def add(self, message: Any) -> None:
        content = str(getattr(message, "content", ""))
        message_id = getattr(message, "id", None)
        if self.streaming is not None and self.streaming[0] != message_id:
            await self.context.message(self.streaming[1])
            self.streaming = None
        if type(message).__name__.endswith("Chunk"):
            await self.context.token(content)
            text = self.streaming[1] if self.streaming else ""
            self.streaming = (message_id, text + content)
        else:
            await self.context.message(content)
            self.streaming = None


def _jsonable(value: Any) -> Any:
    """LangChain messages and other objects as JSON, as langgraph-api serialises them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _jsonable(dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))  # an Interrupt: {"value", "id"}
    return str(value)
