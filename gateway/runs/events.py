"""One event log, many readers: live fan-out in this process, the store as the backlog.

A reader subscribes to live events first, then reads the stored backlog after its last
seen id, and drops duplicates by id: no gap, no repeat. While idle it re-reads the store
now and then, so events written by another process still arrive, and so does the end of a
run whose final event was lost in a crash.

A running run's events are written behind its flow: the flow does not wait for each commit,
its events go to the store several to a transaction, in order, and each reaches live readers
once it is stored. What is still unwritten when the run ends goes into the transaction that
ends it (``take``), so a fast run costs one commit for its events and its end together, and
those reach live readers as soon as that commits (``published``). A crash loses only events of a
run that had not ended, and that run runs again.

A run stored already claimed by this process (``expect``) has no stored events until this
process publishes one, so a reader who subscribes before then has nothing to read back.

Memory is bounded: each live reader holds at most ``queue_size`` events (a slow one is sent
back to the store instead), and at most ``max_readers`` readers get live events at all; the
others, while that many are connected, read the store every ``idle_check`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

import structlog

from gateway import models
from gateway.clock import Clock
from gateway.store import Store, rows

log = structlog.get_logger(__name__)

RUN_END = "run_end"
"""The last event of every run: ``{"status", "output", "error"}``."""


class Queued(NamedTuple):
    """An event of a run running here, not stored yet: its data, and that data as JSON."""

    event: str
    data: Any
    encoded: str


class EventHub:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        queue_size: int = 1024,
        idle_check: float = 1.0,
        max_readers: int = 10_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.queue_size = queue_size
        self.idle_check = idle_check
        self.max_readers = max_readers
        self._readers: defaultdict[str, set[asyncio.Queue[models.Event | None]]] = defaultdict(set)
        self._live = 0
        self._full = False
        self._pending: dict[str, list[Queued]] = {}
        self._fresh: set[str] = set()  # runs here with nothing stored yet
        self._writing: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, Exception] = {}

    @property
    def readers(self) -> int:
        """Readers getting live events now."""
        return self._live

    async def emit(self, run_id: str, event: str, data: Any) -> None:
        """Queue an event of a run running here: it is stored behind the flow, then handed to
        this process's live readers. Data that is not JSON raises here, in the flow."""
        pending = self._pending.setdefault(run_id, [])
        pending.append(Queued(event, data, rows.dumps(data)))
        if run_id not in self._writing:
            self._writing[run_id] = asyncio.create_task(self._write(run_id))
        if len(pending) >= self.queue_size:  # a flow faster than the store waits for it
            await asyncio.shield(self._writing[run_id])

    async def _write(self, run_id: str) -> None:
        """Store the run's queued events, a batch per transaction, until none are left."""
        try:
            while batch := self._pending.pop(run_id, None):
                now = self.clock.now()
                ids = await self.store.append_events(
                    run_id, [(event, encoded) for event, _, encoded in batch], now
                )
                self.published(run_id, batch, ids, now)
        except Exception as exc:  # noqa: BLE001 - told to the run's ending, in take()
            self._failed[run_id] = exc
        finally:
            del self._writing[run_id]

    async def take(self, run_id: str) -> list[Queued]:
        """The run's events not stored yet, for the transaction that ends it, once those being
        stored are; raises what storing an earlier batch raised."""
        pending = self._pending.pop(run_id, [])
        writing = self._writing.get(run_id)
        if writing is not None:
            await asyncio.shield(writing)
        failure = self._failed.pop(run_id, None)
        if failure is not None:
            raise failure
        return pending

    def expect(self, run_id: str) -> None:
        """The run was stored claimed by this process a moment ago: none of its events is
        stored anywhere until one is published here."""
        self._fresh.add(run_id)

    def forget(self, run_id: str) -> None:
        """The run stopped here without an ending of ours (shutdown, a lost lease): its
        unwritten events go; it runs again, and emits them again, wherever it is claimed."""
        self._pending.pop(run_id, None)
        self._failed.pop(run_id, None)
        self._fresh.discard(run_id)

    def published(self, run_id: str, events: list[Queued], ids: Sequence[int], now: float) -> None:
        """``events`` were stored as ``ids`` (behind the flow, or by the transaction that ended
        the run): hand them to the live readers."""
        self._fresh.discard(run_id)
        for event_id, (event, data, _) in zip(ids, events, strict=True):
            self._publish(models.Event(event_id, run_id, event, data, now))

    def _publish(self, stored: models.Event) -> None:
        for queue in self._readers.get(stored.run_id, ()):
            try:
                queue.put_nowait(stored)
            except asyncio.QueueFull:
                # A slow reader falls back to the store instead of holding memory.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def nudge(self, run_id: str) -> None:
        """Tell this process's live readers to look in the store (an event was written there)."""
        for queue in self._readers.get(run_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def wait_ended(self, run_id: str, timeout: float) -> models.Run | None:
        """The run once it ended (or as it is after ``timeout``); None if it is unknown. Woken
        by its events and its end, here or, through the change feed, in another process."""
        deadline = asyncio.get_running_loop().time() + timeout
        with self._subscribe(run_id) as queue:
            while True:
                run = await self.store.get_run(run_id)
                left = deadline - asyncio.get_running_loop().time()
                if run is None or run.status.is_final or left <= 0:
                    return run
                await _next(queue, min(left, self.idle_check))

    @contextlib.contextmanager
    def _subscribe(self, run_id: str) -> Iterator[asyncio.Queue[models.Event | None]]:
        queue: asyncio.Queue[models.Event | None] = asyncio.Queue(self.queue_size)
        if self._live >= self.max_readers:
            if not self._full:
                log.warning("event_readers_full", max_readers=self.max_readers)
            self._full = True
            yield queue  # never fed: this reader re-reads the store every idle_check
            return
        self._full = False
        self._readers[run_id].add(queue)
        self._live += 1
        try:
            yield queue
        finally:
            self._live -= 1
            self._readers[run_id].discard(queue)
            if not self._readers[run_id]:
                del self._readers[run_id]

    async def follow(
        self,
        run_id: str,
        after_id: int = 0,
        *,
        beat: Beat | None = None,
        beat_every: float = 5.0,
    ) -> AsyncIterator[models.Event]:
        """Every event of the run after ``after_id``, stored then live, up to and with ``run_end``.
        ``beat``: awaited whenever no event came for ``beat_every`` seconds (a stream's
        keep-alive), from the loop that waits, so a reader needs no task of its own."""
        loop = asyncio.get_running_loop()
        beats = _Beats(beat, beat_every, loop.time() + beat_every)
        with self._subscribe(run_id) as queue:
            last = after_id
            # Nothing stored yet, and what is stored from now on comes live to this queue.
            caught_up = run_id in self._fresh and queue in self._readers.get(run_id, ())
            read_at = loop.time()
            while True:
                if not caught_up:
                    for event in await self.store.list_events(run_id, last):
                        yield event
                        last = event.id
                        beats.reset(loop.time())
                        if event.event == RUN_END:
                            return
                    caught_up = True
                    read_at = loop.time()
                    run = await self.store.get_run(run_id)
                    if run is None or run.status.is_final:
                        if not await self.store.list_events(run_id, last):
                            return
                        caught_up = False
                        continue
                wake_at = beats.wake_at(read_at + self.idle_check)
                found, live = await _next(queue, max(wake_at - loop.time(), 0.0))
                if not found:
                    await beats.beat_if_due(loop.time())
                    # idle: look in the store now and then
                    caught_up = loop.time() < read_at + self.idle_check
                    continue
                if live is None:
                    caught_up = False
                    continue
                if live.id <= last:
                    continue
                yield live
                last = live.id
                beats.reset(loop.time())
                if live.event == RUN_END:
                    return


Beat = Callable[[], Awaitable[None]]


@dataclasses.dataclass
class _Beats:
    """A reader's keep-alive: ``beat`` once no event came for ``every`` seconds."""

    beat: Beat | None
    every: float
    due_at: float

    def wake_at(self, at: float) -> float:
        return at if self.beat is None else min(at, self.due_at)

    def reset(self, now: float) -> None:
        self.due_at = now + self.every

    async def beat_if_due(self, now: float) -> None:
        if self.beat is not None and now >= self.due_at:
            await self.beat()
            self.reset(asyncio.get_running_loop().time())


async def _next(
    queue: asyncio.Queue[models.Event | None], timeout: float
) -> tuple[bool, models.Event | None]:
    """The queue's next item, if one comes within ``timeout``: ``(False, None)`` if not. No task
    and no timer when one is there already."""
    if not queue.empty():
        return True, queue.get_nowait()
    try:
        async with asyncio.timeout(timeout):
            return True, await queue.get()
    except TimeoutError:
        return False, None
