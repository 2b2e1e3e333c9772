"""In-process fan-out to subscribers, each with a bounded queue: the store's change feed
(``gateway.store.changes``) and the ``/inspect`` live feed (``gateway.inspect.feed``).

A reader that falls behind loses what it has not read and finds ``resync`` instead, so memory
stays bounded and the reader knows to re-read the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class FanOut(Generic[T]):
    def __init__(self, resync: T, queue_size: int, name: str = "") -> None:
        """``name`` tells the feeds apart in the log line of a reader that fell behind."""
        self.name = name
        self.resync = resync
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[T]] = set()
        self._end: tuple[T] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, item: T) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("subscriber_behind", feed=self.name, dropped=queue.qsize())
                _replace_all(queue, self.resync)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[T]]:
        queue: asyncio.Queue[T] = asyncio.Queue(self.queue_size)
        if self._end is not None:
            queue.put_nowait(self._end[0])
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self, end: T) -> None:
        """End every stream (shutdown): each subscriber, and any later one, finds ``end``."""
        self._end = (end,)
        for queue in self._queues:
            _replace_all(queue, end)


def _replace_all(queue: asyncio.Queue[T], item: T) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            queue.get_nowait()
    queue.put_nowait(item)
