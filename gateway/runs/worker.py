"""The run worker: claims pending runs with a lease, executes their flows, finishes them.

A lease rather than a lock: the heartbeat (``gateway.heartbeat``) renews it while the run is
alive here; if this process dies mid-run, the lease lapses and any worker claims the run again,
so every acknowledged trigger ends in a finished run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any

import structlog

from gateway import flows, models
from gateway.clock import Clock
from gateway.runs.service import RunService
from gateway.store import Store

log = structlog.get_logger(__name__)


class RunWorker:
    def __init__(
        self,
        service: RunService,
        store: Store,
        clock: Clock,
        *,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        # How long a cancel waits for a run in another process to end: long enough for the run
        # of a process that died to be taken over (and, its cancel recorded, ended at once).
        self.cancel_wait = lease_seconds + 2 * poll_interval + 5.0
        self._running: dict[str, asyncio.Task[None]] = {}
        self._in_flow: set[str] = set()
        self._cancelled: dict[str, str] = {}
        self._reserved = 0
        self._stopping = False

    async def run_forever(self) -> None:
        """Claim whenever woken (or every ``poll_interval``) while there is room."""
        ready = self.service.runs_ready
        while not self._stopping:
            ready.clear()
            claimed = await self.claim()
            if claimed and len(self._running) < self.concurrency:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):  # no task, unlike wait_for
                    await ready.wait()

    async def claim(self) -> int:
        room = self.concurrency - len(self._running) - self._reserved
        if room <= 0:
            return 0
        runs = await self.store.claim_runs(room, self.clock.now(), self.lease_seconds)
        for run in runs:
            self.adopt(run)
        return len(runs)

    def reserve(self) -> bool:
        if self._stopping or len(self._running) + self._reserved >= self.concurrency:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    def adopt(self, run: models.Run) -> None:
        task = asyncio.create_task(self.execute(run), name=f"run-{run.run_id}")
        self._running[run.run_id] = task
        task.add_done_callback(self._done(run.run_id))

    def held(self) -> Collection[str]:
        """Runs leased to this worker (the heartbeat renews their leases)."""
        return list(self._running)

    def lost(self, ids: Collection[str]) -> None:
        """Leases the heartbeat could not renew. A run still in its flow here was taken over by
        another process after its lease lapsed (or ended or deleted elsewhere): stop it without
        an ending of ours. The others are recording their ending already."""
        for run_id in ids:
            task = self._running.get(run_id)
            if task is not None and run_id in self._in_flow:
                log.warning("run_lease_lost", run_id=run_id)
                task.cancel()

    def _done(self, run_id: str) -> Any:
        def callback(_: asyncio.Task[None]) -> None:
            self._running.pop(run_id, None)
            self._cancelled.pop(run_id, None)
            self.service.events.forget(run_id)
            self.service.runs_ready.set()

        return callback

    async def drain(self) -> None:
        """Run until nothing is pending or running here (tests and one-shot tools)."""
        while await self.claim() or self._running:
            if self._running:
                await asyncio.wait(list(self._running.values()))

    async def stop(self) -> None:
        """Stop claiming, cancel runs in flight and hand them back to the queue."""
        self._stopping = True
        self.service.runs_ready.set()
        tasks = list(self._running.values())
        run_ids = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.release_runs(run_ids, self.clock.now())

    async def cancel(self, run_id: str, reason: str = "cancelled") -> models.Run | None:
        """Interrupt a run wherever it runs: it ends ``interrupted`` and is delivered like any
        other ending. The run as it ended (as it is, if another process did not end it within
        ``cancel_wait``); None if it is unknown or already over.

        The request is recorded on the run first: the process running it hears it through the
        store's change feed, and one claiming it later ends it at once. A pending run ends
        here, a run here is cancelled, a run elsewhere is waited for.
        """
        self._cancelled[run_id] = reason  # a claim here from now on sees the request
        try:
            run = await self.store.request_cancel(run_id, reason, self.clock.now())
            if run is None:
                return None
            if run_id not in self._running and run.status is models.RunStatus.PENDING:
                error = {"error": "Interrupted", "message": reason}
                await self.service.finish(run, models.RunStatus.INTERRUPTED, None, error)
            task = self._interrupt(run_id, reason)  # perhaps claimed here meanwhile
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([task])
            elif run.status is models.RunStatus.RUNNING:
                await self.service.events.wait_ended(run_id, self.cancel_wait)
        finally:
            self._cancelled.pop(run_id, None)
        return await self.store.get_run(run_id)

    async def interrupt_requested(self, run_ids: Collection[str] | None) -> None:
        """Cancels another process recorded (None: any may have been): interrupt the runs here
        they name, with the reason recorded."""
        for run_id in list(self._running) if run_ids is None else run_ids:
            if run_id not in self._running:
                continue
            run = await self.store.get_run(run_id)
            if run is not None and run.cancel_reason is not None:
                self._interrupt(run_id, run.cancel_reason)

    def _interrupt(self, run_id: str, reason: str) -> asyncio.Task[None] | None:
        """Have the run's task here end it ``interrupted``; the task, if the run is here.

        Only a task inside its flow is cancelled: one claimed a moment ago, or recording its
        ending, sees the request itself, so its ending is always written (a task cancelled
        there would leave the run leased, and its thread blocked, until the lease ran out).
        """
        task = self._running.get(run_id)
        if task is not None:
            self._cancelled[run_id] = reason
            if run_id in self._in_flow:
                task.cancel()
        return task

    async def execute(self, run: models.Run) -> None:
        bound = log.bind(run_id=run.run_id, flow_id=run.flow_id)
        flow = self.service.flows.get(run.flow_id)
        if flow is None:
            missing = {
                "error": "FlowNotFound",
                "message": f"flow {run.flow_id!r} is not configured",
            }
            await self.service.finish(run, models.RunStatus.ERROR, None, missing)
            return
        reason = self._cancelled.pop(run.run_id, None) or run.cancel_reason
        if reason is not None:
            interrupted = {"error": "Interrupted", "message": reason}
            await asyncio.shield(
                self.service.finish(run, models.RunStatus.INTERRUPTED, None, interrupted)
            )
            return
        bound.info("run_started", attempt=run.attempt)

        async def emit(event: str, data: Any) -> None:
            await self.service.events.emit(run.run_id, event, data)

        context = flows.RunContext(run.run_id, run.flow_id, emit, run.kwargs)
        deadline = asyncio.timeout(flow.timeout)
        output: Any = None
        error: dict[str, Any] | None = None
        self._in_flow.add(run.run_id)
        try:
            async with deadline:
                output = await flow.run(run.input, context)
            status = models.RunStatus.SUCCESS
        except TimeoutError as exc:
            if deadline.expired():
                status = models.RunStatus.TIMEOUT
                error = {
                    "error": "TimeoutError",
                    "message": f"run exceeded its {flow.timeout:g} s timeout",
                }
            else:
                status, error = models.RunStatus.ERROR, _error(exc)
        except asyncio.CancelledError:
            reason = self._cancelled.pop(run.run_id, None)
            if reason is None:
                raise  # shutting down: the run goes back to the queue
            status = models.RunStatus.INTERRUPTED
            error = {"error": "Interrupted", "message": reason}
            bound.info("run_interrupted", reason=reason)
        except Exception as exc:  # noqa: BLE001 - any failure of flow code ends the run as error
            status, error = models.RunStatus.ERROR, _error(exc)
            bound.info("run_failed", error=error)
        finally:
            self._in_flow.discard(run.run_id)
        await asyncio.shield(self.service.finish(run, status, output, error))


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc) or type(exc).__name__}
