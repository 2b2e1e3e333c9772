"""Acceptance fixtures: the gateway as a real ``python -m gateway serve`` subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.testing import Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gateway.toml"
BANNER = re.compile(r"hookgate listening on (http://[0-9.]+:(\d+))")
START_TIMEOUT = 20.0
STOP_GRACE = 20.0


def gateway_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``GATEWAY_*`` variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONFIG"] = str(CONFIG)
    env.update(overrides)
    return env


def serve_command(database_url: str, *options: str) -> list[str]:
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
    """One ``hookgate serve`` subprocess; stdout is read by a thread, stderr goes to a file."""

    def __init__(self, command: list[str], env: Mapping[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
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
                match = BANNER.search(line)
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

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, as an operator stops it, so it exits in order (and coverage, when measuring,
        writes what the process ran); SIGKILL if it has not exited within ``grace`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        self.kill()

    def stderr_tail(self, lines: int = 30) -> str:
        text = self.stderr_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def diagnostics(self) -> str:
        return (
            f"exit code: {self.process.poll()}\nstdout:\n{''.join(self.stdout)}"
            f"stderr (tail):\n{self.stderr_tail()}"
        )


@pytest.fixture
def spawn_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateway subprocesses; every one still running is stopped at teardown, whatever
    happened."""
    started: list[GatewayProcess] = []

    def spawn(database_url: str, env: Mapping[str, str], *options: str) -> GatewayProcess:
        """``options``: more ``hookgate serve`` options, such as ``--workers 2``."""
        log = tmp_path / f"gateway-{len(started)}.stderr"
        gateway = GatewayProcess(serve_command(database_url, *options), env, log)
        started.append(gateway)
        return gateway

    yield spawn
    for gateway in started:
        gateway.stop()


@pytest.fixture
async def slow_receiver(aiohttp_server: Callable[..., Any]) -> Receiver:
    """A second receiver that takes 0.4 s to answer each callback (200), so some are in flight."""
    recorder = Receiver([Reply(200, delay=0.4)] * 5000)
    server: TestServer = await aiohttp_server(recorder.app(), host="127.0.0.1")
    recorder.url = str(server.make_url("/slow"))
    return recorder
