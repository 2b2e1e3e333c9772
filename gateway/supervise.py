"""``hookgate serve --workers N``: N gateway processes on one port, so one box uses its cores.

Each child is ``hookgate serve`` itself, binding the port with ``SO_REUSEPORT`` so the kernel
spreads connections across them; they share the PostgreSQL database, which is what makes
them one gateway. The parent migrates the schema once, starts the children, prints the banner
once every one listens, starts a new child when one dies, and on SIGTERM or SIGINT asks each
to stop (they finish what is in flight) before it exits itself. A child whose parent is gone
stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

READY = "hookgate worker ready"
"""What a child prints once it listens: ``<READY> <pid> <base url>``."""
START_TIMEOUT = 60.0  # for every child to listen
STOP_TIMEOUT = 60.0  # for a child to finish its work in flight after SIGTERM, before SIGKILL
RESTART_PAUSE = 1.0  # before a dead child's replacement starts: a crash loop costs little
PARENT_CHECK = 1.0  # how often a child looks whether its parent is still there


def ready_line(base: str) -> str:
    return f"{READY} {os.getpid()} {base}"


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound, not listening, to ``host:port`` with ``SO_REUSEPORT``: it fixes the port
    that ``port=0`` picks, and the children bind the same one beside it."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the supervising process is gone: the child was re-parented. (No event
    tells a process its parent died on every platform, so it looks now and then.)"""
    while True:
        await asyncio.sleep(PARENT_CHECK)
        if os.getppid() != parent:
            stop.set()
            return


@dataclasses.dataclass
class Child:
    process: asyncio.subprocess.Process
    ready: asyncio.Event
    base: str = ""


class Supervisor:
    """Runs ``command`` (``hookgate serve --worker-of <pid> …``) ``workers`` times."""

    def __init__(self, command: Sequence[str], workers: int, *, out: TextIO = sys.stdout) -> None:
        self.command = list(command)
        self.workers = workers
        self.out = out
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()

    async def run(self, banner: Callable[[str, list[int]], str]) -> int:
        """Serve until SIGTERM or SIGINT: 0 if every child then stopped cleanly. A child that
        fails before it listens stops them all, with its exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        failed: int | None = None
        try:
            for _ in range(self.workers):
                self.children.append(await self._spawn())
            failed = await self._wait_ready()
            if failed is None:
                pids = [child.process.pid for child in self.children]
                print(banner(self.children[0].base, pids), file=self.out, flush=True)
                await self._keep_running()
        finally:
            stopped = await self._stop_all()
        return stopped if failed is None else failed

    async def _spawn(self) -> Child:
        process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        child = Child(process, asyncio.Event())
        reader = asyncio.create_task(self._read(child), name=f"worker-{process.pid}-stdout")
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        return child

    async def _read(self, child: Child) -> None:
        """Pass a child's output on, except its ready line, which it turns into ``ready``."""
        assert child.process.stdout is not None
        async for raw in child.process.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(READY):
                child.base = line.split()[-1]
                child.ready.set()
            else:
                self.out.write(line)
                self.out.flush()

    async def _wait_ready(self) -> int | None:
        """None once every child listens; else the exit code to leave with."""
        waits = [asyncio.ensure_future(child.ready.wait()) for child in self.children]
        exits = [asyncio.ensure_future(child.process.wait()) for child in self.children]
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not all(child.ready.is_set() for child in self.children):
                    await asyncio.wait([*waits, *exits, stop], return_when="FIRST_COMPLETED")
                    dead = [c for c in self.children if c.process.returncode is not None]
                    if dead:
                        return dead[0].process.returncode or 1
                    if self.stopping.is_set():
                        return 0
        except TimeoutError:
            print(
                f"hookgate: the workers did not all listen within {START_TIMEOUT:g} s",
                file=sys.stderr,
            )
            return 1
        finally:
            for future in (*waits, *exits, stop):
                future.cancel()
        return None

    async def _keep_running(self) -> None:
        """Until asked to stop, replace every child that dies."""
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                exits = {
                    asyncio.ensure_future(child.process.wait()): child for child in self.children
                }
                await asyncio.wait([*exits, stop], return_when="FIRST_COMPLETED")
                for future in exits:
                    future.cancel()
                for index, child in enumerate(self.children):
                    code = child.process.returncode
                    if code is None or self.stopping.is_set():
                        continue
                    await asyncio.sleep(RESTART_PAUSE)
                    self.children[index] = await self._spawn()
                    print(
                        f"hookgate: worker {child.process.pid} exited ({_exit(code)});"
                        f" worker {self.children[index].process.pid} replaces it",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            stop.cancel()

    async def _stop_all(self) -> int:
        """SIGTERM every child still running, SIGKILL those not gone after ``STOP_TIMEOUT``;
        0 if each ended cleanly."""
        for child in self.children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        waits = [child.process.wait() for child in self.children]
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                codes = await asyncio.gather(*waits)
        except TimeoutError:
            for child in self.children:
                if child.process.returncode is None:
                    child.process.kill()
            codes = await asyncio.gather(*(child.process.wait() for child in self.children))
        for reader in list(self._readers):
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1


def _exit(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"
