"""Acceptance fixtures: the gateway as a real ``python -m gateway serve`` subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.testing import GatewayProcess, Receiver, Reply, serve_command


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
