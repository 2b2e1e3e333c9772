"""Backends side by side: durable ingest and delivered runs/s on SQLite, on PostgreSQL with one
gateway process, and on PostgreSQL with ``--workers`` processes, in one run.

Started by ``scripts/bench.py --database postgresql://…`` (the database must exist; each
configuration gets a fresh schema in it, dropped afterwards). Every figure comes from HTTP
alone, the same way for each backend: the load generator counts the 202s, and a receiver in
this process counts the callbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import bench

HEALTH_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Backend:
    label: str
    url: str
    workers: int


@dataclasses.dataclass
class BackendResult:
    backend: Backend
    ingest: bench.LoadResult
    delivered: bench.DeliveryResult


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def create_schema(database_url: str) -> str:
    """A fresh schema in ``database_url``'s database; the URL that names it in search_path."""
    name = "hookgate_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(database_url)
    query = "&".join(q for q in (parts.query, f"search_path={name}") if q)
    return urlunsplit(parts._replace(query=query))


async def drop_schema(database_url: str, schema_url: str) -> None:
    name = urlsplit(schema_url).query.rsplit("search_path=", 1)[1]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def start(backend: Backend, tmp: Path) -> bench.Server:
    """``hookgate serve`` on a known port (``--workers`` share it), ready when /healthz is."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GATEWAY_CONFIG": str(bench.CONFIG),
        "GATEWAY_LOG_LEVEL": bench.LOG_LEVEL,
    }
    argv = [bench.PYTHON, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--database", backend.url]
    if backend.workers > 1:
        argv += ["--workers", str(backend.workers)]
    name = f"{backend.label}-{backend.workers}"
    with (tmp / f"{name}.stderr").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=bench.ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    server = bench.Server(name, proc, f"http://127.0.0.1:{port}", tmp / f"{name}.stderr")
    deadline = time.monotonic() + HEALTH_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited:\n{server.stderr_tail()}")
            try:
                async with session.get(server.url("/healthz")) as response:
                    if response.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    await server.stop()
    raise RuntimeError(f"{name} was not healthy within {HEALTH_TIMEOUT:g} s")


async def delivered(
    server: bench.Server, *, triggers: int, concurrency: int, timeout: float
) -> bench.DeliveryResult:
    """``triggers`` triggers, ``concurrency`` in flight, until every callback has arrived."""
    receiver = bench.CallbackReceiver()
    await receiver.start()
    url = server.url(bench.TRIGGER_PATH)
    try:
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await bench.register_endpoint(session, server, receiver.url)
            warm = min(50, triggers)
            receiver.expect(warm)
            await asyncio.gather(*(bench.trigger(session, url) for _ in range(warm)))
            await asyncio.wait_for(receiver.all_arrived.wait(), timeout)
            receiver.expect(triggers)
            meter = bench.CpuMeter(server.pid)
            pending = iter(range(triggers))

            async def fire() -> None:
                for _ in pending:
                    await bench.trigger(session, url)

            meter.start()
            started = time.perf_counter()
            await asyncio.gather(*(fire() for _ in range(concurrency)))
            acked = time.perf_counter() - started
            try:
                await asyncio.wait_for(receiver.all_arrived.wait(), timeout)
            except TimeoutError:
                raise RuntimeError(
                    f"only {len(receiver.arrivals)} of {triggers} callbacks within {timeout:g} s"
                ) from None
            elapsed = time.perf_counter() - started
            meter.stop(client="self")
        return bench.DeliveryResult(triggers, elapsed, acked, receiver.duplicates, meter)
    finally:
        await receiver.stop()


async def measure(
    backend: Backend, args: argparse.Namespace, tmp: Path, generator: bench.LoadGenerator
) -> BackendResult:
    await bench.wait_for_quiet(args.quiet_wait)
    server = await start(backend, tmp)
    try:
        ingest = await generator(server.url(bench.TRIGGER_PATH), server.pid)
    finally:
        await server.stop()
    await bench.wait_for_quiet(args.quiet_wait)
    server = await start(backend, tmp)
    try:
        result = await delivered(
            server, triggers=args.triggers, concurrency=64, timeout=args.delivery_timeout
        )
    finally:
        await server.stop()
    return BackendResult(backend, ingest, result)


async def run(args: argparse.Namespace, tmp: Path) -> list[BackendResult]:
    generator, label = bench.make_generator(args, tmp)
    bench.log(f"load generator: {label}")
    results = []
    schemas: list[str] = []
    try:
        backends = [Backend("sqlite", f"sqlite:///{tmp / 'bench.db'}", 1)]
        for workers in (1, args.workers):
            schema = await create_schema(args.database)
            schemas.append(schema)
            backends.append(Backend("postgresql", schema, workers))
        for backend in backends:
            bench.log(f"{backend.label}, {backend.workers} process(es) ...")
            results.append(await measure(backend, args, tmp, generator))
    finally:
        for schema in schemas:
            await drop_schema(args.database, schema)
    return results


def report(results: list[BackendResult]) -> list[str]:
    lines = [
        "| store | processes | durable ingest (202/s) | p99 ack | delivered runs/s | vs SQLite |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    base = results[0].delivered.rate if results else 0.0
    for result in results:
        ratio = f"{result.delivered.rate / base:.2f}x" if base else ""
        lines.append(
            f"| {result.backend.label} | {result.backend.workers} "
            f"| {result.ingest.rps:,.0f} | {result.ingest.p99_ms:.0f} ms "
            f"| {result.delivered.rate:,.0f} | {ratio} |"
        )
    return lines


def main(args: argparse.Namespace) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hookgate-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    print("\n".join(report(results)))
    return 0
