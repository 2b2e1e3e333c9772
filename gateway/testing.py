"""Fakes that tests and demos share: a fake clock, a recording receiver, Chromium's settings."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

CHROMIUM = os.environ.get("HOOKGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's Chromium, which the browser tests and scripts/screenshots.py drive through Playwright."""

CHROMIUM_ARGS = (
    # A closed network: no background requests, no first-run work, no GPU, no sandbox (root).
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class FakeClock:
    """Time that moves only when told to; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


@dataclasses.dataclass(frozen=True)
class Received:
    method: str
    path_qs: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the receiver answers one request with: a status, after an optional delay."""

    status: int = 200
    delay: float = 0.0
    body: str = "ok"
    headers: tuple[tuple[str, str], ...] = ()
    reset: bool = False


class Receiver:
    """An aiohttp app that records every request and answers from a script (then 200)."""

    def __init__(self, replies: Iterable[Reply | int] = ()) -> None:
        self.received: list[Received] = []
        self.url = ""
        self._replies = [r if isinstance(r, Reply) else Reply(r) for r in replies]
        self._arrived = asyncio.Condition()

    def script(self, *replies: Reply | int) -> None:
        self._replies = [r if isinstance(r, Reply) else Reply(r) for r in replies]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        reply = self._replies.pop(0) if self._replies else Reply()
        async with self._arrived:
            self.received.append(
                Received(
                    method=request.method,
                    path_qs=request.path_qs,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                )
            )
            self._arrived.notify_all()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.reset and request.transport is not None:
            request.transport.abort()
            raise asyncio.CancelledError
        return web.Response(status=reply.status, text=reply.body, headers=dict(reply.headers))

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived; return them all."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something truthy; fail loudly after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)
