"""The flow registry: Python code named in config, behind one ``Flow`` interface.

A flow is a plain function, an ``async def`` function or an async generator, taking the run's
input and optionally a ``RunContext`` to emit events (a generator yields the state after each
step; its last value is the run's output); or a list / dict of named steps (see
``gateway.flows.steps``); or an upstream HTTP service (``kind = "relay"``, see
``gateway.flows.relay``).

Every flow has *vertices*, the unit Langflow's build events report on: its steps, or the
flow itself for a one-step flow. Flows are found by id, by their unique ``endpoint_name``, or
by their UUID (``models.assistant_id(flow_id)``), see ``find_flow``.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from gateway import errors, models
from gateway.flows import steps as step_flows
from gateway.flows.steps import Callee, Step, StepSpec
from gateway.settings import FlowSettings, Settings

__all__ = ["Flow", "RunContext", "Step", "find_flow", "flow_from_callable", "load_flows"]

Emit = Callable[[str, Any], Awaitable[None]]
Kind = Literal["function", "coroutine", "generator", "steps"]


class RunContext:
    """What flow code may do besides returning: stream tokens, messages and custom data.

    ``kwargs`` are the run's options (``tweaks``, ``start_step``, ``stop_step``, ``session_id``…).
    """

    def __init__(
        self, run_id: str, flow_id: str, emit: Emit, kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.run_id = run_id
        self.flow_id = flow_id
        self.emit = emit
        self.kwargs: Mapping[str, Any] = kwargs or {}

    async def token(self, chunk: str) -> None:
        """One chunk of a message being written (Langflow ``token``, LangGraph ``messages``)."""
        await self.emit("token", {"chunk": chunk})

    async def message(self, text: str, *, sender: str = "Machine") -> None:
        """A whole message (Langflow ``add_message``); after tokens, it completes them."""
        await self.emit("message", {"text": text, "sender": sender})

    async def custom(self, data: Any) -> None:
        """Anything JSON (LangGraph ``custom`` stream mode)."""
        await self.emit("custom", data)


@dataclasses.dataclass(frozen=True)
class Flow:
    flow_id: str
    func: Callable[..., Any]
    kind: Kind
    takes_context: bool
    timeout: float
    description: str = ""
    endpoint_name: str = ""
    steps: tuple[StepSpec, ...] = ()
    params: tuple[str, ...] = ()

    @property
    def uuid(self) -> str:
        """The flow's UUID (its LangGraph assistant id), for clients that expect one."""
        return models.assistant_id(self.flow_id)

    @property
    def vertices(self) -> tuple[str, ...]:
        """Step names in run order, or the flow id for a one-step flow."""
        return tuple(s.name for s in self.steps) or (self.flow_id,)

    def dependencies(self, vertex: str) -> tuple[str, ...]:
        return next((s.after for s in self.steps if s.name == vertex), ())

    def successors(self, vertex: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if vertex in s.after)

    def plan(self, start: str | None = None, stop: str | None = None) -> tuple[str, ...]:
        """The vertices a run executes: from ``start`` on (it and what depends on it), up to
        ``stop`` (it and what it depends on), Langflow's start/stop component semantics.
        Raises ``ValueError`` naming an unknown vertex."""
        vertices = self.vertices
        for label, name in (("start_component_id", start), ("stop_component_id", stop)):
            if name is not None and name not in vertices:
                raise ValueError(
                    f"{label}: unknown component {name!r}; this flow has {', '.join(vertices)}"
                )
        if not self.steps:
            return vertices
        selected = set(vertices)
        if stop is not None:
            selected &= step_flows.ancestors(self.steps, stop) | {stop}
        if start is not None:
            selected &= step_flows.descendants(self.steps, start) | {start}
        return tuple(v for v in vertices if v in selected)

    def first_layer(self, plan: tuple[str, ...]) -> tuple[str, ...]:
        """The vertices of ``plan`` that depend on nothing else in it."""
        return tuple(v for v in plan if not set(self.dependencies(v)) & set(plan))

    def vertex_params(self, vertex: str) -> tuple[str, ...]:
        if not self.steps:
            return self.params
        return next((s.callee.params for s in self.steps if s.name == vertex), ())

    def resolve_tweaks(self, tweaks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Langflow tweaks as parameters per vertex.

        ``{"<vertex>": {param: value}}`` sets one vertex's parameters (an unknown parameter is
        a ``ValueError``); ``{"<param>": value}`` with a non-object value sets that parameter on
        every vertex that has it. Keys naming no vertex of this flow are ignored, as Langflow
        ignores tweaks for components a flow does not have.
        """
        resolved: dict[str, dict[str, Any]] = {}
        vertices = self.vertices
        for key, value in tweaks.items():
            if key in vertices:
                if not isinstance(value, dict):
                    raise ValueError(f"tweaks.{key}: expected an object of parameters")
                known = self.vertex_params(key)
                unknown = sorted(set(value) - set(known))
                if unknown:
                    choices = ", ".join(known) or "none"
                    raise ValueError(
                        f"tweaks.{key}: unknown parameter(s) {', '.join(unknown)}; "
                        f"{key} takes: {choices}"
                    )
                resolved.setdefault(key, {}).update(value)
            elif not isinstance(value, dict):
                for vertex in vertices:
                    if key in self.vertex_params(vertex):
                        resolved.setdefault(vertex, {}).setdefault(key, value)
        return resolved

    async def run(self, value: Any, context: RunContext) -> Any:
        """Execute once and return the output; events go through ``context``."""
        tweaks = context.kwargs.get("tweaks") or {}
        if self.kind == "steps":
            order = self.plan(context.kwargs.get("start_step"), context.kwargs.get("stop_step"))
            return await step_flows.run(self.steps, order, value, context, tweaks)
        params = tweaks.get(self.flow_id, {})
        callee = Callee(self.func, self.kind, self.takes_context, self.params)
        if self.kind == "generator":
            output = None
            async for output in self.func(*callee.args(value, context), **params):
                await context.emit("values", output)
            return output
        return await step_flows.call(callee, value, context, params)


def flow_from_callable(
    flow_id: str,
    func: Any,
    *,
    timeout: float,
    description: str = "",
    endpoint_name: str = "",
) -> Flow:
    """A ``Flow`` from what a flow module exports: a function, or a list/dict of steps."""
    from gateway.flows import langgraph  # a compiled LangGraph graph runs natively

    if langgraph.is_compiled_graph(func):
        func = langgraph.GraphFlow(flow_id, func).run
    if isinstance(func, list | tuple | dict):
        specs = step_flows.load_steps(flow_id, func)
        first = specs[0].callee.func
        return Flow(
            flow_id=flow_id,
            func=first,
            kind="steps",
            takes_context=False,
            timeout=timeout,
            description=description or _doc(func) or _doc(first),
            endpoint_name=endpoint_name,
            steps=specs,
        )
    callee = Callee.of(func, f"flow {flow_id!r}")
    return Flow(
        flow_id=flow_id,
        func=func,
        kind=callee.kind,
        takes_context=callee.takes_context,
        timeout=timeout,
        description=description or _doc(func),
        endpoint_name=endpoint_name,
        params=callee.params,
    )


def _doc(obj: Any) -> str:
    if isinstance(obj, list | tuple | dict):
        return ""
    return (getattr(obj, "__doc__", None) or "").strip().split("\n", 1)[0]


def find_flow(flows: Mapping[str, Flow], ref: str) -> Flow | None:
    """A flow by id, by ``endpoint_name``, or by its UUID."""
    flow = flows.get(ref)
    if flow is not None:
        return flow
    for candidate in flows.values():
        if candidate.endpoint_name and candidate.endpoint_name == ref:
            return candidate
    try:
        wanted = str(uuid.UUID(ref))
    except ValueError:
        return None
    return next((f for f in flows.values() if f.uuid == wanted), None)


def load_flows(settings: Settings) -> Mapping[str, Flow]:
    """Import every ``[flows.<id>]`` target; a missing module or attribute stops start-up."""
    if settings.flows_path and settings.flows_path not in sys.path:
        sys.path.insert(0, settings.flows_path)
    flows = {}
    for flow_id, spec in settings.flows.items():
        timeout = spec.timeout or settings.run_timeout
        flows[flow_id] = flow_from_callable(
            flow_id,
            _target(flow_id, spec, timeout),
            timeout=timeout,
            description=spec.description,
            endpoint_name=spec.endpoint_name,
        )
    return flows


def _target(flow_id: str, spec: FlowSettings, timeout: float) -> Any:
    if spec.kind == "forward":
        from gateway.flows.forward import forward

        return forward
    if spec.kind == "relay":
        from gateway.flows.relay import Relay

        return Relay.from_settings(flow_id, spec, timeout).call
    module_name, _, attribute = spec.target.partition(":")
    if not module_name or not attribute:
        raise errors.ConfigError(f"flow {flow_id!r}: target must be 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise errors.ConfigError(f"flow {flow_id!r}: cannot load {spec.target}: {exc}") from None
