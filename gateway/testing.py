"""What tests, demos and the benchmark share: a fake clock, a recording receiver, a
``hookgate serve`` subprocess, Chromium's settings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
"""The source checkout (the launcher runs ``hookgate serve`` from there, with its config)."""
CONFIG = ROOT / "config" / "gateway.toml"
BANNER = re.compile(r"hookgate listening on (http://[0-9.]+:(\d+))")
START_TIMEOUT = 20.0
STOP_GRACE = 20.0

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
    arrived_at: float = 0.0
    """``time.time()`` when the request reached the receiver (the benchmark's latencies)."""


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
        arrived_at = time.time()
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
                    arrived_at=arrived_at,
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
        return await self.wait_until(lambda received: len(received) >= count, timeout)

    async def wait_until(
        self, done: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until ``done`` holds for the requests arrived so far (asked again at each
        arrival); return them all. ``TimeoutError`` after ``timeout`` seconds."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: done(self.received)), timeout)
        return list(self.received)


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1, a free port, while the block runs; yields its base URL
    (for scripts: tests use pytest-aiohttp's ``aiohttp_server``)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    """A loopback port nothing listens on right now (for a server started later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def gateway_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``GATEWAY_*`` variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONFIG"] = str(CONFIG)
    env.update(overrides)
    return env


def serve_command(database_url: str, *options: str) -> list[str]:
    """``hookgate serve`` on 127.0.0.1, a free port (its banner names it), on ``database_url``."""
    return [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--database",
        database_url,
        *options,
    ]


class GatewayProcess:
    """One ``hookgate serve`` subprocess (or any server that prints a banner like it);
    stdout is read by a thread, stderr goes to a file."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        stderr_path: Path,
        banner: re.Pattern[str] = BANNER,
    ) -> None:
        self.stderr_path = stderr_path
        self.banner = banner
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.stdout: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base_url = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Block until the banner is printed; return the base URL it names."""
        try:
            while True:
                line = self._lines.get(timeout=timeout)
                if line is None:
                    raise AssertionError(f"gateway exited before it listened\n{self.diagnostics()}")
                match = self.banner.search(line)
                if match:
                    self.base_url = match.group(1)
                    return self.base_url
        except queue.Empty:
            raise AssertionError(
                f"gateway did not listen within {timeout} s\n{self.diagnostics()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, exactly like a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        self._stderr.close()

    def stop(self, grace: float = STOP_GRACE) -> bool:
        """SIGTERM, as an operator stops it, so it exits in order (and coverage, when measuring,
        writes what the process ran); SIGKILL if it has not exited within ``grace`` seconds.
        True if it exited by itself."""
        exited = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                exited = False
        self.kill()
        return exited

    def stderr_tail(self, lines: int = 30) -> str:
        text = self.stderr_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def diagnostics(self) -> str:
        return (
            f"exit code: {self.process.poll()}\nstdout:\n{''.join(self.stdout)}"
            f"stderr (tail):\n{self.stderr_tail()}"
        )
