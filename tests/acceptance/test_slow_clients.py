"""Slow clients cannot hold sockets: ``hookgate serve`` closes a connection whose headers or body
do not arrive in time. Raw sockets against the real server, with compressed deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.testing import GatewayProcess, gateway_env, serve_command

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MARGIN = 4.0  # scheduling slack on a busy 2-core machine; without a deadline nothing closes at all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One gateway for the module, with one-second header and two-second body deadlines."""
    tmp: Path = tmp_path_factory.mktemp("slow-clients")
    env = gateway_env(
        GATEWAY_HEADER_READ_TIMEOUT=str(HEADER_TIMEOUT),
        GATEWAY_BODY_READ_TIMEOUT=str(BODY_TIMEOUT),
        GATEWAY_LOG_LEVEL="warning",
    )
    gateway = GatewayProcess(
        serve_command(f"sqlite:///{tmp / 'gateway.db'}"), env, tmp / "gateway.stderr"
    )
    try:
        base = gateway.wait_ready()
        host, port = base.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)
    finally:
        gateway.stop()


@contextlib.asynccontextmanager
async def connect(
    address: tuple[str, int],
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes:
    """Everything the server sends until it closes the connection; fail if it is still open
    after ``limit`` seconds."""
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s")
    except ConnectionResetError:
        pass
    return received


async def trickle(writer: asyncio.StreamWriter, pieces: list[bytes], interval: float) -> None:
    """Send one piece every ``interval`` seconds, until the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(interval)


def request_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_headers_sent_a_line_at_a_time_are_cut_off(address: tuple[str, int]) -> None:
    lines = [b"POST /api/v1/webhook/echo HTTP/1.1\r\n"] + [
        f"X-Slow-{n}: {n}\r\n".encode() for n in range(1000)
    ]
    async with connect(address) as (reader, writer):
        started = time.monotonic()
        sender = asyncio.create_task(trickle(writer, lines, 0.2))
        received = await read_until_closed(reader, HEADER_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - started
        sender.cancel()
    assert elapsed >= HEADER_TIMEOUT * 0.9, "closed before the client had its time"
    assert b"HTTP/1.1 2" not in received, "the request must not have been handled"


async def test_a_connection_that_sends_nothing_is_closed(address: tuple[str, int]) -> None:
    async with connect(address) as (reader, _):
        started = time.monotonic()
        assert await read_until_closed(reader, HEADER_TIMEOUT + MARGIN) == b""
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9


async def test_an_idle_kept_alive_connection_is_closed(address: tuple[str, int]) -> None:
    async with connect(address) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        received = await read_until_closed(reader, HEADER_TIMEOUT + MARGIN)
    assert received.startswith(b"HTTP/1.1 200"), received


@pytest.mark.parametrize(
    ("framing", "first_part"),
    [
        ("Content-Length: 100", b'{"partial": '),
        ("Transfer-Encoding: chunked", b'c\r\n{"partial": \r\n'),
    ],
)
async def test_a_body_that_never_finishes_gets_408_and_is_closed(
    address: tuple[str, int], framing: str, first_part: bytes
) -> None:
    head = request_head("/api/v1/webhook/echo", "Content-Type: application/json", framing)
    async with connect(address) as (reader, writer):
        started = time.monotonic()
        writer.write(head + first_part)
        await writer.drain()
        received = await read_until_closed(reader, BODY_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - started
    assert elapsed >= BODY_TIMEOUT * 0.9, "closed before the client had its time"
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", received
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert "not received within 2 s" in body["detail"]


async def test_a_slow_body_within_the_deadline_is_accepted(address: tuple[str, int]) -> None:
    body = json.dumps({"text": "x" * 300}).encode()
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    head = request_head(
        "/api/v1/webhook/echo",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    )
    async with connect(address) as (reader, writer):
        writer.write(head)
        await trickle(writer, pieces, 0.1)
        received = await read_until_closed(reader, BODY_TIMEOUT + MARGIN)
    assert received.startswith(b"HTTP/1.1 202"), received
