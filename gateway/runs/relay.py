"""Other processes' commits wake this one: the run worker, the dispatcher and the readers of a
run's events hear the store's change feed instead of waiting for their next poll, and a cancel
requested through another process reaches the run here within moments.

This process's own commits are skipped: it signalled its own worker, dispatcher and readers
in memory already. Polling stays as the safety net (a lost notification costs one poll).
"""

from __future__ import annotations

from gateway.runs.service import RunService
from gateway.runs.worker import RunWorker
from gateway.store.changes import ChangeSource

# Work another process made claimable here: a run queued, a thread freed for its next run.
RUNS_READY = ("run.queued", "thread.freed")
# Deliveries made due elsewhere (a retry or replay from another gateway or the CLI), or an
# endpoint resumed. New deliveries are left to the process that wrote them, which sends them.
DELIVERIES_READY = ("delivery.due", "endpoint.changed")
# Consumers of pull endpoints waiting here, whichever process wrote what they may now claim.
PULLS_READY = ("delivery.enqueued", "delivery.due", "endpoint.changed")
# Readers following a run that executes in another process.
EVENTS = ("event.appended", "run.ended")
# A cancel, interrupt or rollback requested through another process, for a run that may run here.
CANCELS = "run.cancel_requested"


async def relay_changes(source: ChangeSource, service: RunService, worker: RunWorker) -> None:
    """Forever: turn other processes' changes into this process's wake-ups."""
    async with source.subscribe() as heard:
        while True:
            change = await heard.get()
            if change.origin == source.origin and not change.resync:
                continue
            if change.touches(CANCELS):
                await worker.interrupt_requested(None if change.resync else change.ids(CANCELS))
            if change.touches(*RUNS_READY):
                service.runs_ready.set()
            if change.touches(*DELIVERIES_READY):
                service.deliveries_ready.set()
            if change.touches(*PULLS_READY):
                service.pulls_ready.set()
            for kind in EVENTS:
                for run_id in change.ids(kind) or ():
                    service.events.nudge(run_id)
