"""Starting and finishing runs: the two writes every run makes, each one transaction.

Finishing writes the final status and one outbox row per destination together, so a run
never ends without its callbacks queued, nor queues callbacks for a run that did not end.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from gateway import clock as clocks
from gateway import errors, models
from gateway.flows import Flow
from gateway.metrics import Metrics
from gateway.outbox import routing
from gateway.outbox.pull import Wakeup
from gateway.runs import payload
from gateway.runs.events import RUN_END, EventHub, Queued
from gateway.store import Store, base, rows

log = structlog.get_logger(__name__)


class Handoff(Protocol):
    """A worker in this process that can take a run the moment it is stored."""

    lease_seconds: float

    def reserve(self) -> bool:
        """Hold a free slot for a run about to be stored; False when there is none."""

    def release(self) -> None:
        """Give the held slot back (the run was stored, or storing it failed)."""

    def adopt(self, run: models.Run) -> None:
        """Start running a run stored already claimed for this worker."""


class DeliveryHandoff(Protocol):
    """The dispatcher in this process, which can lease a run's deliveries as they are written."""

    async def claim(self, run_id: str | None = None) -> int: ...


@dataclasses.dataclass
class RunService:
    store: Store
    flows: Mapping[str, Flow]
    clock: clocks.Clock
    metrics: Metrics
    events: EventHub
    max_write_backlog: int = 10_000
    handoff: Handoff | None = None
    dispatcher: DeliveryHandoff | None = None
    runs_ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    deliveries_ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pulls_ready: Wakeup = dataclasses.field(default_factory=Wakeup)
    """Wakes every consumer waiting on a pull endpoint (``gateway/outbox/pull.py``)."""

    async def start_from_trigger(
        self, trigger: models.Trigger, value: Any, *, webhook: str | None
    ) -> tuple[models.Run, bool]:
        """Store the trigger and its run together; the caller may acknowledge once this returns."""
        self._accept()
        handed = self._reserve()
        new_run = self.new_run(
            trigger.flow_id,
            value,
            webhook,
            trigger_id=trigger.trigger_id,
            lease_until=self._lease_until() if handed else None,
        )
        try:
            run, created = await self.store.create_trigger_and_run(
                trigger, new_run, self.clock.now()
            )
        finally:
            if handed and self.handoff is not None:
                self.handoff.release()
        self._hand_over(run, created, handed)
        return run, created

    async def start(
        self,
        flow_id: str,
        value: Any,
        *,
        webhook: str | None,
        kwargs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        after_seconds: float = 0.0,
        if_thread_idle: bool = False,
        on_thread: bool = False,
    ) -> models.Run:
        """Store a run started by an API call (Langflow's run, LangGraph's runs); it runs soon
        after, or ``after_seconds`` later. ``on_thread``: its graph is recorded in its thread's
        metadata, in the same transaction. A run this process has room for is stored claimed
        for it, unless its thread is busy with another run."""
        self._accept()
        handed = not after_seconds and self._reserve()
        new_run = self.new_run(
            flow_id,
            value,
            webhook,
            kwargs=kwargs,
            metadata=metadata,
            thread_id=thread_id,
            after_seconds=after_seconds,
            lease_until=self._lease_until() if handed else None,
            if_thread_idle=if_thread_idle,
            on_thread=on_thread,
        )
        try:
            run = await self.store.create_run(new_run, self.clock.now())
        finally:
            if handed and self.handoff is not None:
                self.handoff.release()
        self._hand_over(run, True, handed)
        return run

    def _accept(self) -> None:
        """Backpressure: refuse new work (503, Retry-After) while the store is more than
        ``max_write_backlog`` writes behind, rather than queue without bound; nothing is stored
        for a refused request."""
        if self.store.write_backlog() > self.max_write_backlog:
            raise errors.Unavailable("The gateway is overloaded; retry shortly")

    def _reserve(self) -> bool:
        return self.handoff is not None and self.handoff.reserve()

    def _lease_until(self) -> float:
        assert self.handoff is not None
        return self.clock.now() + self.handoff.lease_seconds

    def _hand_over(self, run: models.Run, created: bool, handed: bool) -> None:
        """A run stored already claimed goes straight to this process's worker; others wait
        for a claim."""
        if not created:
            return
        if handed and self.handoff is not None and run.status is models.RunStatus.RUNNING:
            self.events.expect(run.run_id)
            self.handoff.adopt(run)
        else:
            self.runs_ready.set()

    def new_run(
        self,
        flow_id: str,
        value: Any,
        webhook: str | None,
        *,
        trigger_id: str | None = None,
        kwargs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        after_seconds: float = 0.0,
        lease_until: float | None = None,
        if_thread_idle: bool = False,
        on_thread: bool = False,
    ) -> base.NewRun:
        """The record of a run to store: its id, flow, input, options and LangGraph metadata."""
        graph = {"graph_id": flow_id, "assistant_id": models.assistant_id(flow_id)}
        merged: dict[str, Any] = {**(metadata or {}), **graph}
        if trigger_id:
            merged["trigger_id"] = trigger_id
        return base.NewRun(
            run_id=models.new_id(),
            flow_id=flow_id,
            input=value,
            kwargs={**(kwargs or {}), "webhook": webhook},
            metadata=merged,
            thread_id=thread_id,
            after_seconds=after_seconds,
            lease_until=lease_until,
            if_thread_idle=if_thread_idle,
            thread_metadata=graph if on_thread else None,
        )

    async def finish(
        self,
        run: models.Run,
        status: models.RunStatus,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> models.Run | None:
        """Write the run's ending and its deliveries; the run as it ended, or None if another
        worker finished it first."""
        now = self.clock.now()
        ended = dataclasses.replace(
            run, status=status, output=output, error=error, ended_at=now, updated_at=now
        )
        try:
            body = payload.completion_payload(ended, sent_at=now)
        except (TypeError, ValueError) as exc:  # the payload is the first place output meets JSON
            status, output = models.RunStatus.ERROR, None
            error = {"error": "TypeError", "message": f"flow output is not JSON: {exc}"}
            ended = dataclasses.replace(ended, status=status, output=output, error=error)
            body = payload.completion_payload(ended, sent_at=now)
        event_type = f"run.{status.value}"
        deliveries = []
        if run.webhook:
            deliveries.append(
                models.NewDelivery(
                    delivery_id=models.new_id(),
                    url=run.webhook,
                    event_type=event_type,
                    payload=body,
                    origin_at=run.created_at,
                )
            )
        routes = await self._route(run, event_type, body, now)
        deliveries += routes.deliveries
        final = {"status": status.value, "output": output, "error": error}
        events = [*await self.events.take(run.run_id), Queued(RUN_END, final, rows.dumps(final))]
        ending = base.RunEnding(
            run.run_id,
            status,
            output,
            error,
            deliveries,
            events=[(queued.event, queued.encoded) for queued in events],
            filtered=routes.filtered,
        )
        if deliveries and self.dispatcher is not None:
            # Queued back to back, both land in one group commit: the run's deliveries are
            # leased to this process as they are written, and start at once.
            finished, _ = await asyncio.gather(
                self.store.finish_run(ending, now), self.dispatcher.claim(run.run_id)
            )
        else:
            finished = await self.store.finish_run(ending, now)
        if finished is None:
            log.info("run_already_finished", run_id=run.run_id, flow_id=run.flow_id)
            self.events.nudge(run.run_id)
            return None
        self.events.published(run.run_id, events, finished.event_ids, now)
        self.metrics.runs.labels(run.flow_id, status.value).inc()
        log.info(
            "run_completed",
            run_id=run.run_id,
            flow_id=run.flow_id,
            status=status.value,
            deliveries=len(deliveries),
        )
        if deliveries:
            self.deliveries_ready.set()
            self.pulls_ready.set()
        return ended

    async def _route(
        self, run: models.Run, event_type: str, body: bytes, now: float
    ) -> routing.Routes:
        """The registered endpoints' deliveries of this ending, filtered and shaped per
        endpoint (the trigger is read only when one of them needs it)."""
        endpoints = [
            e for e in await self.store.list_endpoints() if e.wants(run.flow_id, event_type)
        ]
        trigger = None
        if run.trigger_id and routing.needs_trigger(endpoints):
            trigger = await self.store.get_trigger(run.trigger_id)
        source = routing.Source(
            run.run_id, run.flow_id, event_type, body, run.input, run.created_at, trigger
        )
        return routing.route(endpoints, source, now)
