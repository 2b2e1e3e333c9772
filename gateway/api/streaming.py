"""Streams whose client may leave: run the producer while the client is connected, and when it
leaves (its connection closes, or a write to it fails), stop the producer and say so.

The server does not cancel a handler when its client goes (aiohttp's ``handler_cancellation``
is off: a webhook's store write must not be cut short), so a stream watches its connection
itself. Both stream APIs use this: Langflow's ``/run?stream=true`` and LangGraph's
``/runs/stream``, ``/runs/wait`` and ``join``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

CONNECTION_CHECK = 0.1
"""Seconds between two looks at the client's connection."""

Departure = Callable[[], Awaitable[None]]
_departing: set[asyncio.Task[Any]] = set()


async def while_connected(
    request: web.Request,
    produce: Callable[[], Awaitable[None]],
    on_departure: Departure | None = None,
) -> bool:
    """Run ``produce`` until it ends; True if it did. If the client leaves first, ``produce`` is
    cancelled, ``on_departure`` runs to its end (even if this handler is cancelled meanwhile),
    and the answer is False."""
    try:
        stayed = await _unless_departed(request, produce())
    except asyncio.CancelledError:
        if on_departure is not None:
            await _to_the_end(on_departure())
        raise
    if not stayed and on_departure is not None:
        await _to_the_end(on_departure())
    return stayed


async def _unless_departed(request: web.Request, work: Awaitable[None]) -> bool:
    task = asyncio.ensure_future(work)
    watch = asyncio.create_task(_departed(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
    if task.cancelled():
        return False
    exc = task.exception()
    if isinstance(exc, ConnectionError):  # a write to a client that has gone
        return False
    if exc is not None:
        raise exc
    return True


async def _departed(request: web.Request) -> None:
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(CONNECTION_CHECK)


async def _to_the_end(work: Awaitable[None]) -> None:
    """Await ``work``, which goes on to its end even if the awaiting handler is cancelled."""
    task = asyncio.ensure_future(work)
    _departing.add(task)
    task.add_done_callback(_departing.discard)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)
