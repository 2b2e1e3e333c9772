"""The flow registry: Python code named in config, behind one ``Flow`` interface.

A flow is a plain function, an ``async def`` function or an async generator, taking the run's
input and optionally a ``RunContext`` to emit events. A generator yields the state after each
step; its last value is the run's output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from gateway import errors
from gateway.settings import Settings

Emit = Callable[[str, Any], Awaitable[None]]
Kind = Literal["function", "coroutine", "generator"]


class RunContext:
    """What flow code may do besides returning: stream tokens, messages and custom data."""

    def __init__(self, run_id: str, flow_id: str, emit: Emit) -> None:
        self.run_id = run_id
        self.flow_id = flow_id
        self.emit = emit

    async def token(self, chunk: str) -> None:
        await self.emit("token", {"chunk": chunk})

    async def message(self, text: str, *, sender: str = "Machine") -> None:
        await self.emit("message", {"text": text, "sender": sender})

    async def custom(self, data: Any) -> None:
        await self.emit("custom", data)


@dataclasses.dataclass(frozen=True)
class Flow:
    flow_id: str
    func: Callable[..., Any]
    kind: Kind
    takes_context: bool
    timeout: float
    description: str = ""

    async def run(self, value: Any, context: RunContext) -> Any:
        """Execute once and return the output; events go through ``context``."""
        args = (value, context) if self.takes_context else (value,)
        if self.kind == "generator":
            output = None
            async for output in self.func(*args):
                await context.emit("values", output)
            return output
        if self.kind == "coroutine":
            return await self.func(*args)
        return await asyncio.to_thread(self.func, *args)


def flow_from_callable(
    flow_id: str, func: Callable[..., Any], *, timeout: float, description: str = ""
) -> Flow:
    kind: Kind
    if inspect.isasyncgenfunction(func):
        kind = "generator"
    elif inspect.iscoroutinefunction(func):
        kind = "coroutine"
    elif callable(func):
        kind = "function"
    else:
        raise errors.ConfigError(f"flow {flow_id!r}: target is not callable")
    try:
        positional = [
            p
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        positional = []
    return Flow(
        flow_id=flow_id,
        func=func,
        kind=kind,
        takes_context=len(positional) >= 2,
        timeout=timeout,
        description=description or (inspect.getdoc(func) or "").split("\n", 1)[0],
    )


def load_flows(settings: Settings) -> Mapping[str, Flow]:
    """Import every ``[flows.<id>]`` target; a missing module or attribute stops start-up."""
    if settings.flows_path and settings.flows_path not in sys.path:
        sys.path.insert(0, settings.flows_path)
    flows = {}
    for flow_id, spec in settings.flows.items():
        module_name, _, attribute = spec.target.partition(":")
        if not module_name or not attribute:
            raise errors.ConfigError(f"flow {flow_id!r}: target must be 'module:attribute'")
        try:
            module = importlib.import_module(module_name)
            func = getattr(module, attribute)
        except (ImportError, AttributeError) as exc:
            raise errors.ConfigError(
                f"flow {flow_id!r}: cannot load {spec.target}: {exc}"
            ) from None
        flows[flow_id] = flow_from_callable(
            flow_id,
            func,
            timeout=spec.timeout or settings.run_timeout,
            description=spec.description,
        )
    return flows
