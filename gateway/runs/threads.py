"""LangGraph threads and the runs on them: creation with multitask strategies, cancel, views.

Every run is started through ``RunService.start``, so its ``webhook`` goes through the outbox
(signed, retried, dead-lettered) like any other. A thread's status and values are derived
from its runs by the store, never kept in step by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

from gateway import clock as clocks
from gateway import errors, models
from gateway.runs.events import RUN_END
from gateway.runs.service import RunService
from gateway.runs.sse import ModeMapper
from gateway.runs.worker import RunWorker
from gateway.store import Store, base
from gateway.store import thread_store as thread_verbs

MULTITASK_STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
REJECTED = (
    "Thread is already running a task. Wait for it to finish or choose a different multitask "
    "strategy."
)


class LangGraphStore(Store, thread_verbs.ThreadStore, Protocol):
    """What the LangGraph surface needs of the store: the core verbs and the thread verbs."""


def thread_store(store: Store) -> LangGraphStore:
    if not all(hasattr(store, verb) for verb in ("create_thread", "fire_cron")):
        raise errors.Unavailable("this store has no LangGraph threads")
    return cast(LangGraphStore, store)


@dataclasses.dataclass(frozen=True)
class RunRequest:
    flow_id: str
    thread_id: str | None
    input: Any
    stream_mode: tuple[str, ...]
    webhook: str | None = None
    command: Any = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    on_completion: str = "delete"
    on_disconnect: str = "continue"
    subgraphs: bool = False
    resumable: bool = False
    interrupt_before: Any = None
    interrupt_after: Any = None
    feedback_keys: Any = None
    durability: str = "async"
    after_seconds: float = 0.0
    extra_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class KeyedLocks:
    """A lock per key, kept in memory only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Threads:
    def __init__(
        self, service: RunService, worker: RunWorker, store: LangGraphStore, clock: clocks.Clock
    ) -> None:
        self.service = service
        self.worker = worker
        self.store = store
        self.clock = clock
        self._locks = KeyedLocks()

    async def create_run(self, request: RunRequest) -> models.Run:
        """Store the run (and its thread if asked to); apply the multitask strategy."""
        if request.thread_id is None:
            thread_id = models.new_id()
            temporary = request.on_completion != "keep"
            if not temporary:
                await self._new_thread(thread_id, request.flow_id)
            return await self._start(request, thread_id, {}, temporary=temporary)
        thread_id = request.thread_id
        async with self._locks.hold(thread_id):
            thread = await self.store.get_thread(thread_id)
            if thread is None:
                if request.if_not_exists != "create":
                    raise errors.NotFound("Thread or assistant not found.")
                thread = await self._new_thread(thread_id, request.flow_id)
            # "enqueue" leaves the runs in flight alone; "reject" is checked with the insert.
            inflight = []
            if request.multitask_strategy != "enqueue":
                inflight = await self.store.inflight_runs(thread_id)
            if inflight and request.multitask_strategy == "reject":
                raise errors.Conflict(REJECTED)
            try:
                run = await self._start(
                    request, thread_id, thread.metadata, temporary=False, on_thread=True
                )
            except errors.Conflict:
                if request.multitask_strategy == "reject":
                    raise errors.Conflict(REJECTED) from None
                raise
        if request.multitask_strategy in ("interrupt", "rollback"):
            # Queued runs first: while the running one still holds the thread, none of them
            # can be claimed and started only to be interrupted.
            queued_first = sorted(
                inflight, key=lambda other: other.status is models.RunStatus.RUNNING
            )
            for other in queued_first:
                await self.cancel(other, request.multitask_strategy)
        return run

    async def _new_thread(self, thread_id: str, flow_id: str) -> models.Thread:
        now = self.clock.now()
        metadata = {"graph_id": flow_id, "assistant_id": models.assistant_id(flow_id)}
        thread, _ = await self.store.create_thread(
            models.Thread(thread_id, metadata, {}, now, now), "do_nothing"
        )
        return thread

    async def _start(
        self,
        request: RunRequest,
        thread_id: str,
        thread_metadata: dict[str, Any],
        *,
        temporary: bool,
        on_thread: bool = False,
    ) -> models.Run:
        kwargs, metadata = run_fields(request, thread_id, thread_metadata, temporary=temporary)
        return await self.service.start(
            request.flow_id,
            request.input,
            webhook=request.webhook,
            kwargs=kwargs,
            metadata=metadata,
            thread_id=thread_id,
            after_seconds=request.after_seconds,
            if_thread_idle=request.multitask_strategy == "reject",
            on_thread=on_thread,
        )

    def new_run(self, request: RunRequest, thread_id: str, *, temporary: bool) -> base.NewRun:
        """The run ``RunService.start`` would store, for callers that insert it themselves
        in a transaction of their own (cron firings)."""
        kwargs, metadata = run_fields(request, thread_id, {}, temporary=temporary)
        return self.service.new_run(
            request.flow_id,
            request.input,
            request.webhook,
            kwargs=kwargs,
            metadata=metadata,
            thread_id=thread_id,
        )

    async def cancel(self, run: models.Run, action: str) -> None:
        """``interrupt``: the run ends ``interrupted`` (its states are kept);
        ``rollback``: it ends too, then the run and its states are deleted."""
        reason = "rolled back" if action == "rollback" else "interrupted"
        await self.worker.cancel(run.run_id, reason)
        if action == "rollback":
            await self.store.delete_run(run.run_id)


def run_fields(
    request: RunRequest, thread_id: str, thread_metadata: dict[str, Any], *, temporary: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's ``kwargs`` and ``metadata`` as the peer builds them."""
    config_metadata = request.config.get("metadata")
    metadata = {
        "created_by": "system",
        **{k: v for k, v in thread_metadata.items() if k not in ("graph_id", "assistant_id")},
        **(config_metadata if isinstance(config_metadata, dict) else {}),
        **request.metadata,
        **request.extra_metadata,
    }
    configurable = request.config.get("configurable")
    config = {
        **request.config,
        "configurable": {
            **(configurable if isinstance(configurable, dict) else {}),
            "thread_id": thread_id,
            "graph_id": request.flow_id,
            "assistant_id": models.assistant_id(request.flow_id),
        },
    }
    kwargs = {
        "command": request.command,
        "config": config,
        "context": request.context,
        "stream_mode": list(request.stream_mode),
        "interrupt_before": request.interrupt_before,
        "interrupt_after": request.interrupt_after,
        "feedback_keys": request.feedback_keys,
        "temporary": temporary,
        "subgraphs": request.subgraphs,
        "resumable": request.resumable,
        "checkpoint_during": request.durability != "exit",
        "durability": request.durability,
        "multitask_strategy": request.multitask_strategy,
        "on_disconnect": request.on_disconnect,
    }
    return kwargs, metadata


# views: LangGraph's shapes


def thread_view(thread: models.Thread, values: Any, *, include_ttl: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "thread_id": thread.thread_id,
        "created_at": clocks.isoformat(thread.created_at),
        "updated_at": clocks.isoformat(thread.updated_at),
        "state_updated_at": clocks.isoformat(thread.updated_at),
        "metadata": thread.metadata,
        "status": thread.status,
        "config": thread.config,
        "values": values,
        "interrupts": {},
    }
    if include_ttl and thread.ttl is not None:
        view["ttl"] = thread.ttl
    return view


def checkpoint_ref(thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
    if checkpoint_id is None:
        return None
    return {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}


def state_view(
    thread_id: str, checkpoint: models.Checkpoint | None, parent: models.Checkpoint | None
) -> dict[str, Any]:
    """LangGraph's ``ThreadState``; with no checkpoint yet, what its server answers for a
    thread that never ran (empty values, no metadata, no checkpoint)."""
    if checkpoint is None:
        return {
            "values": {},
            "next": [],
            "tasks": [],
            "metadata": None,
            "created_at": None,
            "checkpoint": None,
            "parent_checkpoint": None,
            "interrupts": [],
            "checkpoint_id": None,
            "parent_checkpoint_id": None,
        }
    parent_id = parent.checkpoint_id if parent else None
    metadata: dict[str, Any] = {"source": checkpoint.source}
    if checkpoint.run_id:
        metadata["run_id"] = checkpoint.run_id
    if checkpoint.as_node:
        metadata["writes"] = {checkpoint.as_node: checkpoint.values}
    return {
        "values": checkpoint.values,
        "next": [],
        "tasks": [],
        "metadata": metadata,
        "created_at": clocks.isoformat(checkpoint.created_at),
        "checkpoint": checkpoint_ref(thread_id, checkpoint.checkpoint_id),
        "parent_checkpoint": checkpoint_ref(thread_id, parent_id),
        "interrupts": [],
        "checkpoint_id": checkpoint.checkpoint_id,
        "parent_checkpoint_id": parent_id,
    }


def is_state(values: Any) -> bool:
    """A thread's state is an object or an array (LangGraph's schema); a flow's scalar
    output (``true``, ``"done"``) is a run's result, not a state."""
    return isinstance(values, dict | list)


def check_state_values(values: Any, name: str) -> Any:
    """A state update from a client: an object, an array, or null for none."""
    if values is not None and not is_state(values):
        raise errors.Unprocessable(
            f"{name}: expected an object or an array, got {type(values).__name__}"
        )
    return values


def superstep_updates(supersteps: Any) -> list[dict[str, Any]]:
    """The state updates of a new thread's ``supersteps``, in order, all checked before any
    is stored."""
    if supersteps is None:
        return []
    if not isinstance(supersteps, list) or not all(isinstance(s, dict) for s in supersteps):
        raise errors.Unprocessable("supersteps: expected a list of {updates: [...]}")
    updates: list[dict[str, Any]] = []
    for superstep in supersteps:
        found = superstep.get("updates") or []
        if not isinstance(found, list) or not all(isinstance(u, dict) for u in found):
            raise errors.Unprocessable("supersteps.updates: expected a list of objects")
        for update in found:
            check_state_values(update.get("values"), "supersteps.updates.values")
            if not isinstance(update.get("as_node"), str | None):
                raise errors.Unprocessable("supersteps.updates.as_node: expected a string")
        updates.extend(found)
    return updates


def updated_values(current: Any, update: Any) -> Any:
    """The state after ``update``: objects merge key by key, null keeps the state as it is,
    anything else replaces it."""
    if update is None:
        return current if current is not None else {}
    if isinstance(current, dict) and isinstance(update, dict):
        return {**current, **update}
    return update


async def checkpoints(store: LangGraphStore, thread_id: str) -> list[models.Checkpoint]:
    """The thread's states, newest first: every stored checkpoint that holds a state."""
    return [c for c in await store.list_checkpoints(thread_id) if is_state(c.values)]


async def thread_values(store: LangGraphStore, thread_id: str) -> Any:
    found = await checkpoints(store, thread_id)
    return found[0].values if found else None


async def current_state(store: LangGraphStore, thread_id: str) -> dict[str, Any]:
    newest = await checkpoints(store, thread_id)
    first = newest[0] if newest else None
    parent = newest[1] if len(newest) > 1 else None
    return state_view(thread_id, first, parent)


def new_checkpoint_id() -> str:
    return str(uuid.UUID(models.new_id()))


def ended_as(run: models.Run, events: list[models.Event]) -> models.Run | None:
    """The run as its ``run_end`` event (the last of ``events``) says it ended; None without
    one."""
    if not events or events[-1].event != RUN_END or not isinstance(events[-1].data, dict):
        return None
    ending = events[-1].data
    try:
        status = models.RunStatus(str(ending.get("status")))
    except ValueError:
        return None
    return dataclasses.replace(
        run, status=status, output=ending.get("output"), error=ending.get("error")
    )


def final_body(run: models.Run, events: list[models.Event]) -> Any:
    """What ``wait``/``join`` answer (§5.1): ``__error__``, else the last values, else the output."""
    if run.status is models.RunStatus.ERROR:
        return {"__error__": run.error or {"error": "Error", "message": "run failed"}}
    mapper = ModeMapper(run, ("values",))
    for event in events:
        mapper.feed(event)
    if mapper.last_values is not None:
        return mapper.last_values
    return run.output if run.output is not None else {}
