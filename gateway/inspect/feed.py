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
from typing import Any

from gateway.fanout import FanOut
from gateway.store.changes import ChangeSource

Change = dict[str, Any]


class Notifier:
    """Fan-out of changes to the ``/inspect`` live streams of this process; a slow reader is
    told to re-read everything (``{"kind": "resync"}``), the end of a stream is ``None``."""

    def __init__(self, queue_size: int = 256) -> None:
        self._fanout: FanOut[Change | None] = FanOut(
            {"kind": "resync"}, queue_size, name="inspect live"
        )

    @property
    def subscribers(self) -> int:
        return self._fanout.subscribers

    def publish(self, kind: str, **fields: Any) -> None:
        self._fanout.publish({"kind": kind, **fields})

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Change | None]]:
        return self._fanout.subscribe()

    def close(self) -> None:
        """End every stream (shutdown): each subscriber receives ``None``."""
        self._fanout.close(None)


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
