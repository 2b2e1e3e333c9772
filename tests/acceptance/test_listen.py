"""``hookgate listen`` as a subprocess against ``hookgate serve``: a pull endpoint's deliveries
reach a local receiver, across a ``kill -9`` of the listener, each under its own unchanged
``webhook-id``; a wrong API key stops it with one line."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import standardwebhooks
from aiohttp.test_utils import TestServer

from gateway.testing import ROOT, GatewayProcess, Receiver, Reply, eventually, gateway_env

pytestmark = pytest.mark.slow

API_KEY = "k-listen-acceptance-0123456789"
TRIGGERS = 24
ENV = {
    "GATEWAY_API_KEY": API_KEY,
    "GATEWAY_RETRY_SCHEDULE": "0.2,0.5,1",
    "GATEWAY_RETRY_JITTER": "0",
    "GATEWAY_POLL_INTERVAL": "0.1",
    "GATEWAY_LOG_FORMAT": "json",
}
LEASE = 3.0  # seconds: how soon the deliveries a killed listener held come back


class ListenerProcess:
    """One ``hookgate listen`` subprocess; its stdout lines are collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self.stderr_path = stderr_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "listen", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._ready: queue.Queue[bool] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Ready."):
                self._ready.put(True)
        self._ready.put(False)

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self._ready.get(timeout=timeout), self.diagnostics()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        self._stderr.close()

    def diagnostics(self) -> str:
        return (
            f"exit code: {self.process.poll()}\nstdout:\n{''.join(self.lines)}"
            f"stderr:\n{self.stderr_path.read_text(errors='replace')[-3000:]}"
        )


@pytest.fixture
def spawn_listener(tmp_path: Path) -> Iterator[Callable[..., ListenerProcess]]:
    started: list[ListenerProcess] = []

    def spawn(*args: str, api_key: str = API_KEY) -> ListenerProcess:
        env = gateway_env(GATEWAY_API_KEY=api_key)
        listener = ListenerProcess(list(args), env, tmp_path / f"listen-{len(started)}.stderr")
        started.append(listener)
        return listener

    yield spawn
    for listener in started:
        listener.kill()


@pytest.fixture
def gateway(spawn_gateway: Callable[..., GatewayProcess], tmp_path: Path) -> str:
    return spawn_gateway(f"sqlite:///{tmp_path / 'gw.db'}", gateway_env(**ENV)).wait_ready()


async def api(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with http.request(method, url, headers={"x-api-key": API_KEY}, **kwargs) as response:
        assert response.status < 300, (response.status, await response.text())
        return await response.json()


@pytest.mark.timeout(120)
async def test_listen_delivers_everything_across_a_kill_with_unchanged_webhook_ids(
    gateway: str,
    spawn_listener: Callable[..., ListenerProcess],
    aiohttp_server: Callable[..., Any],
) -> None:
    receiver = Receiver([Reply(200, delay=0.15)] * 1000)  # slow enough to be caught mid-stream
    server: TestServer = await aiohttp_server(receiver.app(), host="127.0.0.1")
    local = str(server.make_url("/hook"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        endpoint = await api(http, "POST", f"{gateway}/api/v1/endpoints", json={"mode": "pull"})
        endpoint_id = endpoint["endpoint_id"]
        args = [endpoint_id, "--url", gateway, "--forward-to", local]
        args += ["--lease", str(LEASE), "--wait", "2", "--batch", "4", "--timeout", "0.9"]
        first = spawn_listener(*args)
        await asyncio.to_thread(first.wait_ready)
        run_ids = [
            (await api(http, "POST", f"{gateway}/api/v1/webhook/echo", json={"n": n}))["run_id"]
            for n in range(TRIGGERS)
        ]
        await receiver.wait_for(TRIGGERS // 3, timeout=30)
        first.kill()  # mid-stream: with deliveries taken and not acknowledged
        arrived_before = len(receiver.received)
        assert arrived_before < TRIGGERS, "the kill came too late to test anything"

        second = spawn_listener(*args)
        await asyncio.to_thread(second.wait_ready)

        async def all_delivered() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = await api(
                http, "GET", f"{gateway}/api/v1/deliveries?endpoint_id={endpoint_id}&limit=1000"
            )
            done = [d for d in found if d["status"] == "succeeded"]
            return found if len(found) == TRIGGERS == len(done) else None

        deliveries = await eventually(all_delivered, timeout=60, interval=0.2)

    webhook = standardwebhooks.Webhook(endpoint["secret"])
    sent = {d["delivery_id"]: d["run_id"] for d in deliveries}
    assert set(sent.values()) == set(run_ids)
    seen: dict[str, str] = {}
    for received in receiver.received:
        payload = webhook.verify(received.body, received.headers)
        webhook_id = received.headers["webhook-id"]
        assert sent[webhook_id] == payload["run_id"], "each webhook-id stays with its run"
        seen[webhook_id] = payload["run_id"]
    assert set(seen) == set(sent), "every delivery arrived"
    printed = "".join(second.lines)
    assert "[200]" in printed
    assert any(webhook_id in printed for webhook_id in sent)
    print(f"arrived before the kill: {arrived_before}, in all: {len(receiver.received)}")


async def test_listen_stops_with_one_line_on_a_wrong_api_key(
    gateway: str, spawn_listener: Callable[..., ListenerProcess]
) -> None:
    listener = spawn_listener(
        "01a22f50-b816-7ec3-b442-689417ba911d",
        "--url",
        gateway,
        "--forward-to",
        "http://127.0.0.1:9/hook",
        api_key="wrong-key-0123456789",
    )
    code = await asyncio.to_thread(listener.process.wait, 30)
    assert code == 1, listener.diagnostics()
    stderr = listener.stderr_path.read_text()
    assert stderr.startswith("hookgate: the gateway refused (403)"), stderr
    assert "Traceback" not in stderr
    assert "wrong-key" not in stderr + "".join(listener.lines)
    assert len(stderr.splitlines()) == 1
