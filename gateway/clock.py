"""Time as a seam: everything reads ``clock.now()`` and awaits ``clock.sleep()``, so tests can fake it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def utc(timestamp: float) -> datetime:
    """A stored moment as a UTC datetime. One outside what ``datetime`` can hold (the API
    refuses them, but a row may predate that) shows as the nearest moment it can hold,
    so no page fails on it."""
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return _EARLIEST if timestamp < 0 else _LATEST


def isoformat(timestamp: float | None) -> str | None:
    """RFC 3339 with offset, as LangGraph's server writes datetimes."""
    if timestamp is None:
        return None
    return utc(timestamp).isoformat()
