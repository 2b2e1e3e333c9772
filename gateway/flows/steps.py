"""Flows with named steps: the unit Langflow calls a component (vertex) and LangGraph a node.

A steps flow is declared in the flow module as a list of functions (run in that order), or a
dict of step name → function, or either holding ``Step(func, name=…, after=(…))`` for explicit
dependencies. Each step takes the state (a dict) and optionally the ``RunContext``, and returns
the partial update to merge into the state (a dict, or None for no change); an async generator
step yields several updates. Keyword parameters with defaults are the step's *parameters*:
Langflow ``tweaks`` override them by step id.

The events a steps flow emits, in order (the contract LangGraph's and Langflow's stream
adapters read): ``values`` with the initial state, then for each step ``step_start``
``{"step", "index", "steps"}``, then per update ``updates`` ``{"<step>": <update>}`` and
``values`` with the full merged state. The run's output is the final state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from gateway import errors

if TYPE_CHECKING:
    from gateway.flows import RunContext

CallKind = Literal["function", "coroutine", "generator"]
STEP_START = "step_start"


@dataclasses.dataclass(frozen=True)
class Step:
    """One named step. ``after`` lists the steps it depends on (None: the step declared before it)."""

    func: Callable[..., Any]
    name: str = ""
    after: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Callee:
    """A function as hookgate calls it: how (sync, async, generator), whether it takes the
    context, and which keyword parameters ``tweaks`` may set."""

    func: Callable[..., Any]
    kind: CallKind
    takes_context: bool
    params: tuple[str, ...]

    @classmethod
    def of(cls, func: Callable[..., Any], label: str) -> Callee:
        kind: CallKind
        if inspect.isasyncgenfunction(func):
            kind = "generator"
        elif inspect.iscoroutinefunction(func):
            kind = "coroutine"
        elif callable(func):
            kind = "function"
        else:
            raise errors.ConfigError(f"{label}: target is not callable")
        try:
            parameters = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        positional = [
            p
            for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        params = tuple(
            p.name
            for p in parameters
            if p.kind == p.KEYWORD_ONLY
            or (p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
        )
        return cls(func=func, kind=kind, takes_context=len(positional) >= 2, params=params)

    def args(self, value: Any, context: RunContext) -> tuple[Any, ...]:
        return (value, context) if self.takes_context else (value,)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """A step once loaded: its name, dependencies and how to call it."""

    name: str
    callee: Callee
    after: tuple[str, ...]


def load_steps(flow_id: str, declared: Any) -> tuple[StepSpec, ...]:
    """Steps from a list or dict declaration, in dependency order (declaration order breaks ties)."""
    items: list[tuple[str, Step]] = []
    entries: Iterable[tuple[str | None, Any]] = (
        declared.items() if isinstance(declared, Mapping) else ((None, f) for f in declared)
    )
    for key, entry in entries:
        step = entry if isinstance(entry, Step) else Step(entry)
        if not callable(step.func):
            raise errors.ConfigError(f"flow {flow_id!r}: step {key or step.name!r} is not callable")
        name = key or step.name or getattr(step.func, "__name__", "")
        if step.name and key and step.name != key:
            raise errors.ConfigError(f"flow {flow_id!r}: step {key!r} is named {step.name!r}")
        items.append((str(name), step))
    if not items:
        raise errors.ConfigError(f"flow {flow_id!r}: a steps flow needs at least one step")
    names = [name for name, _ in items]
    for name in names:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise errors.ConfigError(f"flow {flow_id!r}: invalid step name {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise errors.ConfigError(f"flow {flow_id!r}: duplicate steps {', '.join(duplicates)}")
    specs: dict[str, StepSpec] = {}
    previous: str | None = None
    for name, step in items:
        after = step.after if step.after is not None else ((previous,) if previous else ())
        unknown = [dep for dep in after if dep not in names or dep == name]
        if unknown:
            raise errors.ConfigError(
                f"flow {flow_id!r}: step {name!r} depends on unknown steps {unknown}"
            )
        specs[name] = StepSpec(name, Callee.of(step.func, f"flow {flow_id!r} step {name!r}"), after)
        previous = name
    return _topological(flow_id, names, specs)


def _topological(
    flow_id: str, names: list[str], specs: dict[str, StepSpec]
) -> tuple[StepSpec, ...]:
    ordered: list[StepSpec] = []
    done: set[str] = set()
    while len(ordered) < len(names):
        ready = [n for n in names if n not in done and set(specs[n].after) <= done]
        if not ready:
            cycle = [n for n in names if n not in done]
            raise errors.ConfigError(f"flow {flow_id!r}: steps depend on each other: {cycle}")
        ordered.append(specs[ready[0]])
        done.add(ready[0])
    return tuple(ordered)


def ancestors(steps: tuple[StepSpec, ...], name: str) -> set[str]:
    by_name = {s.name: s for s in steps}
    found: set[str] = set()
    todo = list(by_name[name].after)
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(by_name[current].after)
    return found


def descendants(steps: tuple[StepSpec, ...], name: str) -> set[str]:
    found: set[str] = set()
    for step in steps:  # dependency order: a step's dependencies come before it
        if name in step.after or found & set(step.after):
            found.add(step.name)
    return found


async def call(callee: Callee, value: Any, context: RunContext, params: Mapping[str, Any]) -> Any:
    """Call a non-generator function (a sync one in a thread) and return its result."""
    args = callee.args(value, context)
    if callee.kind == "coroutine":
        return await callee.func(*args, **params)
    return await asyncio.to_thread(callee.func, *args, **params)


async def updates(
    step: StepSpec, state: dict[str, Any], context: RunContext, params: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any] | None]:
    """The updates one step makes: one per yield for a generator, else its return value."""
    if step.callee.kind == "generator":
        async for update in step.callee.func(*step.callee.args(state, context), **params):
            yield _checked(step.name, update)
    else:
        yield _checked(step.name, await call(step.callee, state, context, params))


def _checked(name: str, update: Any) -> dict[str, Any] | None:
    if update is None or isinstance(update, dict):
        return update
    raise TypeError(f"step {name!r} must return a dict (a partial state update) or None")


async def run(
    steps: tuple[StepSpec, ...],
    order: tuple[str, ...],
    value: Any,
    context: RunContext,
    tweaks: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Run the steps named in ``order``, emitting the step events; return the final state."""
    names = [s.name for s in steps]
    state: dict[str, Any] = dict(value) if isinstance(value, dict) else {"input": value}
    await context.emit("values", state)
    for index, step in enumerate(steps):
        if step.name not in order:
            continue
        await context.emit(STEP_START, {"step": step.name, "index": index, "steps": names})
        params = dict(tweaks.get(step.name, {}))
        async for update in updates(step, state, context, params):
            if update:
                state = {**state, **update}
            await context.emit("updates", {step.name: update})
            await context.emit("values", state)
    return state
