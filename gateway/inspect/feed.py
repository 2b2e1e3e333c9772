"""The live feed behind ``/inspect``: the store's change feed, as page changes.

``republish`` hears every commit the store announces (this process's and, on PostgreSQL,
every other process's), each after it committed, so a page never shows something that is not
yet durable. Page changes are small dicts (``{"kind": "run", "run_id": …}``); a page re-reads
what it shows through the store.

Memory holds only live fan-out: a slow or gone subscriber loses announcements, never data, and
a page that reconnects re-reads everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from gateway.store.changes import ChangeSource

Change = dict[str, Any]


class Notifier:
    """Fan-out of changes to the ``/inspect`` live streams of this process."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[Change | None]] = set()
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, kind: str, **fields: Any) -> None:
        change = {"kind": kind, **fields}
        for queue in self._queues:
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                # A slow reader is told to re-read everything instead of holding memory.
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait({"kind": "resync"})

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Change | None]]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue(self.queue_size)
        if self.closed:
            queue.put_nowait(None)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every stream (shutdown): each subscriber receives ``None``."""
        self.closed = True
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    queue.get_nowait()
            queue.put_nowait(None)


# store change kind → (page change kind, the id field pages filter on)
KINDS = {
    "trigger.created": ("trigger", "trigger_id"),
    "run.created": ("run", "run_id"),
    "run.claimed": ("run", "run_id"),
    "run.queued": ("run", "run_id"),
    "run.ended": ("run_end", "run_id"),
    "delivery.enqueued": ("delivery", "delivery_id"),
    "delivery.due": ("delivery", "delivery_id"),
    "delivery.attempted": ("attempt", "delivery_id"),
    "endpoint.changed": ("endpoint", "endpoint_id"),
    "bin.captured": ("capture", "bin_id"),
    "bin.changed": ("bin", "bin_id"),
}


async def republish(source: ChangeSource, notifier: Notifier) -> None:
    """Forever: the store's changes, as page changes. A page filters on the id it shows; a
    change without it (too many ids to list) makes every page re-read."""
    async with source.subscribe() as heard:
        while True:
            change = await heard.get()
            if change.resync:
                notifier.publish("resync")
                continue
            for kind, ids in change.kinds.items():
                if kind not in KINDS:
                    continue
                page_kind, field = KINDS[kind]
                if ids is None:
                    notifier.publish(page_kind)
                for one in ids or ():
                    notifier.publish(page_kind, **{field: one})
