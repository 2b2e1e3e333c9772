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


def isoformat(timestamp: float | None) -> str | None:
    """RFC 3339 with offset, as LangGraph's server writes datetimes."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
