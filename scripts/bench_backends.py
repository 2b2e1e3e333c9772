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
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import bench

from gateway.testing import serve_command


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
    """``hookgate serve`` (``--workers`` processes sharing its port) on the backend's database."""
    options = ["--workers", str(backend.workers)] if backend.workers > 1 else []
    name = f"{backend.label}-{backend.workers}"
    argv = serve_command(backend.url, *options)
    return await bench.start_server(name, argv, bench.bench_env(), tmp / f"{name}.stderr")


async def delivered(
    server: bench.Server, *, triggers: int, concurrency: int, timeout: float
) -> bench.DeliveryResult:
    async with bench.callback_receiver() as callbacks:
        return await bench.measure_delivery(
            server, callbacks, triggers=triggers, concurrency=concurrency, timeout=timeout
        )


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
