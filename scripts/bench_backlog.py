"""The backlog benchmark (issue 15): a receiver down while N deliveries pile up across 100
endpoints, then the receiver back and a gateway draining them.

Started by ``scripts/bench.py --backlog [N]`` (default 1,000,000) on a fresh SQLite file, or
with ``--database postgresql://…`` on a fresh schema of that database, dropped afterwards.

1. build: 100 endpoints point at a port where nothing listens yet, and N pending deliveries
   are stored through the store's own verb (``enqueue_deliveries``) in batches of
   ``BATCH``, as finished runs would enqueue them but without running N flows first (which
   would measure ingest, not the backlog). The claim (``claim_deliveries`` of 64, each claimed
   delivery handed straight back with ``defer_delivery``, so nothing changes) is timed at
   1,000 pending and at N, and the claim statement's plan is shown at N;
2. drain: the receiver (a bare aiohttp app in its own process, counting distinct
   ``webhook-id`` s) comes up on that port, then ``hookgate serve`` starts on the database.
   The receiver comes up first: a gateway sending into a dead port opens every endpoint's
   circuit after 10 failures, and the drain would begin with a 60 s cool-down that measures the
   circuit policy, not the backlog. Measured: the drain rate of each tenth (of each 100,000
   for N of a million), the gateway's peak RSS (``VmHWM``), and the latency of
   ``/inspect/deliveries``, ``GET /api/v1/deliveries?status=pending`` and a page deep in the
   pending list (its cursor taken halfway through the backlog) every ``PROBE_EVERY`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import bench
import bench_backends
from cryptography.fernet import Fernet

from gateway import models, paging
from gateway.log import configure_logging
from gateway.store import base, store_from_url
from gateway.store.postgres.deliveries import CLAIM_DELIVERIES as PG_CLAIM
from gateway.store.sqlite.deliveries import CLAIM_DELIVERIES as SQLITE_CLAIM
from gateway.testing import free_port

ENDPOINTS = 100
BATCH = 10_000
CLAIM = 64  # the dispatcher's delivery_concurrency
POLICY = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=10)  # the defaults
CLAIM_SAMPLES = 7
PROBE_EVERY = 0.5
GOALS = {"flat": 0.8, "rss_mb": 300.0, "p99_ms": 200.0}

# The receiver: its own process, so that counting a thousand callbacks a second does not
# delay this process's latency probes. Prints a line each ``every`` distinct deliveries.
RECEIVER = """
import asyncio, sys, time
from aiohttp import web

port, every = int(sys.argv[1]), int(sys.argv[2])
seen, repeated = set(), 0

async def hook(request):
    global repeated
    await request.read()
    key = request.headers.get("webhook-id", "")
    if key in seen:
        repeated += 1
    else:
        seen.add(key)
        if len(seen) % every == 0:
            print(f"arrived {len(seen)} {repeated} {time.time()}", flush=True)
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("listening", flush=True)
    await asyncio.Event().wait()

try:
    asyncio.run(main())
except (KeyboardInterrupt, web.GracefulExit):
    pass
"""


@dataclasses.dataclass
class Result:
    backend: str
    backlog: int
    build_seconds: float = 0.0
    claim_ms: dict[int, float] = dataclasses.field(default_factory=dict)
    plan: list[str] = dataclasses.field(default_factory=list)
    chunk: int = 0
    chunk_rates: list[float] = dataclasses.field(default_factory=list)
    delivered: int = 0
    repeated: int = 0
    drain_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    latency_ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


# 1. build


async def build(store: base.Store, port: int, n: int, result: Result) -> base.Position:
    """Stores the backlog; where its older half begins, for a page deep in the list."""
    now = time.time()
    endpoints = [
        models.Endpoint(
            endpoint_id=models.new_id(),
            url=f"http://127.0.0.1:{port}/hook/{i}",
            secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            created_at=now,
            updated_at=now,
            description=f"backlog {i}",
        )
        for i in range(ENDPOINTS)
    ]
    for endpoint in endpoints:
        await store.create_endpoint(endpoint)
    stored = 0
    while stored < n:
        size = min(BATCH, n - stored, 1000 - stored if stored < 1000 else BATCH)
        batch = [
            models.NewDelivery(
                models.new_id(),
                endpoints[i % ENDPOINTS].url,
                "run.success",
                b'{"type": "run.success", "data": {"n": %d}}' % i,
                endpoints[i % ENDPOINTS].endpoint_id,
            )
            for i in range(stored, stored + size)
        ]
        at = time.time()
        await store.enqueue_deliveries(None, batch, at)
        result.build_seconds += time.time() - at
        if stored <= n // 2 < stored + size:
            middle = base.Position(at, batch[0].delivery_id)
        stored += size
        if stored == 1000 or stored == n:
            result.claim_ms[stored] = await time_claim(store)
        if stored % (BATCH * 10) == 0:
            bench.log(f"      {stored:,} pending")
    return middle


async def time_claim(store: base.Store) -> float:
    """The median time of a claim of ``CLAIM``, ms; each claimed delivery is handed back as
    it was (due at the same time, its started try removed)."""
    times = []
    for _ in range(CLAIM_SAMPLES):
        started = time.perf_counter()
        claimed = await store.claim_deliveries(CLAIM, time.time(), 30.0, POLICY)
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.gather(
            *(store.defer_delivery(d.delivery_id, d.next_attempt_at or 0) for d in claimed)
        )
    return sorted(times)[len(times) // 2]


def claim_arguments(now: float) -> tuple[object, ...]:
    return (now, now + 30, CLAIM, POLICY.circuit_failure_threshold, POLICY.max_concurrency)


async def claim_plan(database_url: str, schema_url: str | None) -> list[str]:
    """The claim statement's plan at the current backlog, as the database shows it."""
    now = time.time()
    if schema_url is None:
        path = database_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            params = dict(
                zip(
                    ("now", "lease", "limit", "threshold", "default_cap"),
                    claim_arguments(now),
                    strict=True,
                ),
                owner="plan",
            )
            found = conn.execute("EXPLAIN QUERY PLAN " + SQLITE_CLAIM, params).fetchall()
        finally:
            conn.close()
        return [row[-1] for row in found]
    pg = await asyncpg.connect(schema_url)
    try:
        planned = await pg.fetch("EXPLAIN " + PG_CLAIM, *claim_arguments(now), "plan")
    finally:
        await pg.close()
    return [row[0] for row in planned]


# 2. drain


async def start_receiver(port: int, every: int, tmp: Path) -> asyncio.subprocess.Process:
    with (tmp / "receiver.stderr").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            bench.PYTHON,
            "-c",
            RECEIVER,
            str(port),
            str(every),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), bench.START_TIMEOUT)
    if not line.startswith(b"listening"):
        raise RuntimeError(f"the receiver did not start: {(tmp / 'receiver.stderr').read_text()}")
    return proc


def peak_rss_mb(pid: int) -> float:
    """The highest RSS the process has reached (``VmHWM``), MB; 0 if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def watch_memory(pid: int, peak: list[float]) -> None:
    """``peak_rss_mb`` kept in ``peak[0]`` until the process is gone."""
    while True:
        peak[0] = max(peak[0], peak_rss_mb(pid))
        await asyncio.sleep(0.5)


async def probe(server: bench.Server, deep_cursor: str, latency: dict[str, list[float]]) -> None:
    """The pages an operator looks at during the drain, one after another, timed."""
    urls = {
        "/inspect/deliveries": "/inspect/deliveries",
        "GET /api/v1/deliveries?status=pending": "/api/v1/deliveries?status=pending",
        "the same, a page halfway down": f"/api/v1/deliveries?status=pending&cursor={deep_cursor}",
    }
    async with aiohttp.ClientSession() as session:
        while True:
            for label, path in urls.items():
                started = time.perf_counter()
                async with session.get(server.url(path)) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path} answered {response.status}")
                latency.setdefault(label, []).append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_EVERY)


async def drain(database_url: str, port: int, tmp: Path, deep_cursor: str, result: Result) -> None:
    n = result.backlog
    result.chunk = 100_000 if n >= 1_000_000 else max(n // 10, 1)
    receiver = await start_receiver(port, result.chunk, tmp)
    server = await bench_backends.start(
        bench_backends.Backend(result.backend, database_url, 1), tmp
    )
    started = time.time()
    peak = [0.0]
    watchers = [
        asyncio.create_task(watch_memory(server.pid, peak)),
        asyncio.create_task(probe(server, deep_cursor, result.latency_ms)),
    ]
    assert receiver.stdout is not None
    timeout = 120 + n / 50
    last = started
    try:
        while result.delivered < n:
            line = await asyncio.wait_for(receiver.stdout.readline(), timeout)
            if not line:
                raise RuntimeError("the receiver stopped")
            _, count, repeated, at = line.split()
            result.delivered, result.repeated = int(count), int(repeated)
            result.chunk_rates.append(result.chunk / (float(at) - last))
            last = float(at)
            bench.log(f"      {result.delivered:,} delivered, {result.chunk_rates[-1]:,.0f}/s")
        result.drain_seconds = last - started
    except TimeoutError:
        result.problems.append(f"drain stopped at {result.delivered:,} of {n:,}")
    finally:
        for task in watchers:
            task.cancel()
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        result.peak_rss_mb = peak[0]
        await server.stop()
        receiver.terminate()
        await receiver.wait()


# the run


async def run(n: int, database: str | None, tmp: Path) -> Result:
    os.environ["GATEWAY_SECRET_KEY"] = Fernet.generate_key().decode()  # the served gateway's too
    schema_url = await bench_backends.create_schema(database) if database else None
    database_url = schema_url or f"sqlite:///{tmp / 'backlog.db'}"
    result = Result("postgresql" if database else "sqlite", n)
    port = free_port()  # nothing listens there until the drain
    try:
        store = store_from_url(database_url, os.environ["GATEWAY_SECRET_KEY"])
        await store.open()
        try:
            bench.log(f"[1/2] build: {n:,} pending deliveries across {ENDPOINTS} endpoints ...")
            middle = await build(store, port, n, result)
        finally:
            await store.close()
        result.plan = await claim_plan(database_url, schema_url)
        bench.log("[2/2] drain: receiver up, hookgate serve started ...")
        await drain(database_url, port, tmp, paging.encode(middle), result)
    finally:
        if database and schema_url:
            await bench_backends.drop_schema(database, schema_url)
    return result


def p99(values: list[float]) -> float:
    return bench.percentile(values, 99)


def report(result: Result) -> list[str]:
    n, rates = result.backlog, result.chunk_rates
    flat = rates[-1] / rates[0] if len(rates) > 1 and rates[0] else float("nan")
    at_n, at_1k = result.claim_ms.get(n, float("nan")), result.claim_ms.get(1000, float("nan"))
    lines = [
        f"backlog benchmark, {result.backend}, {n:,} pending deliveries, {ENDPOINTS} endpoints"
        f" ({bench.git_revision()}, {os.cpu_count()} cores)",
        "",
        "| measure | figure | goal |",
        "| --- | --- | --- |",
        f"| backlog stored through `enqueue_deliveries` | {result.build_seconds:,.0f} s"
        f" ({n / max(result.build_seconds, 1e-9):,.0f}/s) | |",
        f"| claim of {CLAIM}, at 1,000 pending / at {n:,} | {at_1k:.1f} ms / {at_n:.1f} ms"
        f" ({at_n / at_1k:.1f}x) | flat |",
        f"| drain rate, first / last {result.chunk:,} | {rates[0] if rates else 0:,.0f}/s /"
        f" {rates[-1] if rates else 0:,.0f}/s ({flat:.2f}) | within 20% |",
        f"| drained | {result.delivered:,} in {result.drain_seconds:,.0f} s,"
        f" {result.repeated} repeated | all, once |",
        f"| gateway peak RSS | {result.peak_rss_mb:,.0f} MB | < {GOALS['rss_mb']:.0f} MB |",
    ]
    for label, values in result.latency_ms.items():
        lines.append(
            f"| {label}, during the drain, p50 / p99 / max ({len(values)} samples) |"
            f" {bench.percentile(values, 50):.0f} / {p99(values):.0f} / {max(values):.0f} ms"
            f" | p99 < {GOALS['p99_ms']:.0f} ms |"
        )
    lines += ["", "every " + f"{result.chunk:,}: " + ", ".join(f"{r:,.0f}/s" for r in rates)]
    lines += ["", "claim plan at the full backlog:", *(f"    {row}" for row in result.plan)]
    lines += [f"PROBLEM: {problem}" for problem in result.problems]
    return lines


def main(args: argparse.Namespace) -> int:
    configure_logging("console", "warning")  # this process's own store, while it builds
    with tempfile.TemporaryDirectory(prefix="hookgate-backlog-") as tmp:
        try:
            result = asyncio.run(run(args.backlog, args.database, Path(tmp)))
        except RuntimeError as exc:
            bench.log(f"bench: {exc}")
            return 1
    print("\n".join(report(result)))
    return 1 if result.problems else 0
