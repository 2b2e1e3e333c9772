#!/usr/bin/env python
"""hookgate benchmark: ingest rate against a bare aiohttp baseline, delivery rate, idle latency.

Run from the repo root with the project's venv:

    .venv/bin/python scripts/bench.py            # full run (1-3 minutes)
    .venv/bin/python scripts/bench.py --quick    # a short smoke run (under a minute)

Everything happens on 127.0.0.1. The baseline server and every gateway run as subprocesses
(``python -m gateway serve --port 0``), so the load generator never shares their event loop;
they are started by the acceptance tests' launcher, and callbacks are received by the tests'
receiver (``gateway.testing``). Each gateway gets a fresh SQLite file in a temporary directory,
the shipped config, GATEWAY_LOG_LEVEL=warning and no other GATEWAY_* variable of the shell.

Phases, each bounded in count and time:

1. baseline: a bare aiohttp ``POST`` handler answering ``{"ok": true}``, driven by the load
   generator for ``--duration`` seconds after ``--warmup`` seconds;
2. ingest: ``POST /api/v1/webhook/echo`` against the real gateway (no endpoints registered;
   the runs still execute in the background, as in production), same generator, same timing;
3. the ratio gateway / baseline (target >= 0.5);
4. delivery: an endpoint pointing at a receiver in this process, ``--triggers`` triggers fired
   64 at a time, and the time until every callback has arrived: runs completed-and-delivered/s;
5. idle latency: one trigger at a time, from just before the POST to the callback's arrival at
   the receiver, p50/p99 (target p50 <= 10 ms), split into stages with the timestamps the
   gateway stores (trigger received, run claimed, run finishing, attempt started);

plus, in-process and cheap, the effect of the store's group commit on its write rate.

CPU use of the server, the load generator and everything else is measured over each window
(from /proc): with 2 cores, a Python load generator needs most of one, and other processes on
the machine skew every figure. Before each phase the script waits (``--quiet-wait``) for the
machine to be idle, and warns when it was not.

The load generator is ``wrk`` when it is on PATH (``--generator auto``), else an aiohttp
ClientSession in this process with ``--concurrency`` keep-alive connections; the same one drives
the baseline and the gateway, and the report says which was used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from gateway.testing import (
    BANNER,
    CONFIG,
    ROOT,
    GatewayProcess,
    Receiver,
    gateway_env,
    serve,
    serve_command,
)

PYTHON = sys.executable
FLOW_ID = "echo"
TRIGGER_PATH = f"/api/v1/webhook/{FLOW_ID}"
BODY = b'{"hello":"world","bench":true}'
JSON_HEADERS = {"Content-Type": "application/json"}
BASELINE_BANNER = re.compile(r"baseline listening on (http://[0-9.]+:\d+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CALLBACK_TIMEOUT = 5.0  # one callback in the idle-latency phase
IDLE_GAP = 0.02  # pause between idle-latency samples, so the previous delivery is fully recorded
LOG_LEVEL = "warning"
TARGET_RATIO = 0.5
TARGET_P50_MS = 10.0
STOP_PROBLEMS: list[str] = []  # servers that had to be killed

# The baseline: the bare handler, served the way hookgate serves (AppRunner, no access log).
BASELINE_SERVER = """
import asyncio
from aiohttp import web

async def handle(request):
    return web.json_response({"ok": True})

async def main():
    app = web.Application()
    app.router.add_post("/api/v1/webhook/{flow_id}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    print(f"baseline listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()

try:
    asyncio.run(main())
except (KeyboardInterrupt, web.GracefulExit):
    pass
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


# ---------------------------------------------------------------------------------------------
# small helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (not idle, not waiting for I/O), from /proc."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{spec}}{unit}"


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


async def wait_for_quiet(max_wait: float, threshold: float = 0.2) -> float | None:
    """Wait (at most ``max_wait`` s) for a half-second in which the whole machine used less
    than ``threshold`` of a core, so other people's jobs do not skew a phase. Returns the
    busy share last seen when it gave up, else None."""
    deadline = time.perf_counter() + max_wait
    busy = None
    while True:
        before = machine_busy_seconds()
        if before is None:
            return None
        await asyncio.sleep(0.5)
        after = machine_busy_seconds()
        busy = ((after or before) - before) / 0.5
        if busy < threshold:
            return None
        if time.perf_counter() >= deadline:
            return busy


# ---------------------------------------------------------------------------------------------
# servers under test, as subprocesses


@dataclasses.dataclass
class Server:
    """A server under test: a subprocess started by the tests' launcher, named for the report."""

    name: str
    process: GatewayProcess

    @property
    def pid(self) -> int:
        return self.process.process.pid

    @property
    def running(self) -> bool:
        return self.process.process.poll() is None

    def url(self, path: str) -> str:
        return self.process.base_url + path

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return self.process.stderr_tail(lines)
        except OSError:
            return ""

    async def stop(self) -> None:
        if not await asyncio.to_thread(self.process.stop, STOP_TIMEOUT):
            log(f"  {self.name} did not stop within {STOP_TIMEOUT:g} s of SIGTERM: killed")
            STOP_PROBLEMS.append(self.name)


async def start_server(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    stderr_path: Path,
    banner: re.Pattern[str] | None = None,
) -> Server:
    """Start ``argv`` and wait for its "... listening on http://HOST:PORT" line on stdout."""
    launched = GatewayProcess(list(argv), env, stderr_path, banner or BANNER)
    server = Server(name, launched)
    try:
        await asyncio.to_thread(launched.wait_ready, START_TIMEOUT)
    except AssertionError as exc:
        await server.stop()
        raise RuntimeError(f"{name}: {exc}") from None
    except BaseException:
        await server.stop()
        raise
    return server


async def start_baseline(tmp: Path) -> Server:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [PYTHON, "-c", BASELINE_SERVER]
    return await start_server("baseline", argv, env, tmp / "baseline.stderr", BASELINE_BANNER)


def bench_env() -> dict[str, str]:
    """A gateway's environment: the shipped config, quiet logs, nothing from this shell."""
    return gateway_env(PYTHONUNBUFFERED="1", GATEWAY_LOG_LEVEL=LOG_LEVEL)


async def start_gateway(tmp: Path, label: str) -> tuple[Server, Path]:
    db = tmp / f"{label}.db"
    argv = serve_command(f"sqlite:///{db}")
    server = await start_server(f"gateway ({label})", argv, bench_env(), tmp / f"{label}.stderr")
    return server, db


def status_counts(db: Path, table: str) -> dict[str, int]:
    """Rows of ``runs`` or ``deliveries`` by status, read straight from the gateway's database
    (WAL lets a reader in while the gateway writes)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status").fetchall()
    finally:
        conn.close()
    return {status: count for status, count in rows}


def run_counts(db: Path) -> dict[str, int]:
    return status_counts(db, "runs")


async def settle_deliveries(db: Path, limit: float = 10.0) -> None:
    """Wait (bounded) until every delivery's attempt is recorded, so that stopping the gateway
    does not interrupt one: a callback reaches the receiver before its attempt is written."""
    for _ in range(max(1, round(limit / 0.05))):
        if not status_counts(db, "deliveries").get("pending", 0):
            return
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# load generators


@dataclasses.dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float | None = None  # share of one core, 1.0 = 100 %
    client_cpu: float | None = None
    others_cpu: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class CpuMeter:
    """CPU used over the measured window by the server, the load generator and everything else.

    Shares of one core (1.0 = one core busy). "others" is the whole machine's busy time less
    the server and the generator: other people's processes, and the kernel's network work.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start: tuple[float, float | None, float, float, float | None] | None = None
        self.server: float | None = None
        self.client: float | None = None
        self.others: float | None = None

    def start(self) -> None:
        self._start = (
            time.perf_counter(),
            cpu_seconds(self.server_pid),
            time.process_time(),
            children_cpu_seconds(),
            machine_busy_seconds(),
        )

    def stop(self, *, client: str = "self") -> None:
        """``client``: "self" (this process generates the load), "children" (a child that has
        exited and been waited for, i.e. wrk) or "none"."""
        if self._start is None:
            return
        wall0, server0, self0, children0, busy0 = self._start
        wall = time.perf_counter() - wall0
        server1, busy1 = cpu_seconds(self.server_pid), machine_busy_seconds()
        if wall <= 0:
            return
        if server0 is not None and server1 is not None:
            self.server = (server1 - server0) / wall
        if client == "self":
            self.client = (time.process_time() - self0) / wall
        elif client == "children":
            self.client = (children_cpu_seconds() - children0) / wall
        if busy0 is not None and busy1 is not None and self.server is not None:
            mine = self.server + (self.client or 0.0)
            self.others = max(0.0, (busy1 - busy0) / wall - mine)


async def python_load(
    url: str, server_pid: int, *, concurrency: int, warmup: float, duration: float
) -> LoadResult:
    """``concurrency`` keep-alive clients POSTing back to back; counts what completes in the window."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    meter = CpuMeter(server_pid)

    async def client(session: aiohttp.ClientSession) -> None:
        while (sent := time.perf_counter()) < window_end:
            try:
                async with session.post(url, data=BODY, headers=JSON_HEADERS) as response:
                    await response.read()
                    ok = 200 <= response.status < 300
            except (aiohttp.ClientError, TimeoutError, OSError):
                ok = False
            done = time.perf_counter()
            if window_start <= done < window_end:
                counts["ok" if ok else "errors"] += 1
                if ok and sent >= window_start:
                    latencies.append(done - sent)
            if not ok:
                await asyncio.sleep(0.01)  # a dead server must not turn this into a busy loop

    async def window() -> None:
        await asyncio.sleep(warmup)
        meter.start()
        await asyncio.sleep(duration)
        meter.stop(client="self")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(window(), *(client(session) for _ in range(concurrency)))
    return LoadResult(
        requests=counts["ok"],
        errors=counts["errors"],
        seconds=duration,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        server_cpu=meter.server,
        client_cpu=meter.client,
        others_cpu=meter.others,
    )


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else math.nan


async def _wrk(argv: Sequence[str], timeout: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out.decode(errors='replace')}")
    return out.decode(errors="replace")


async def wrk_load(
    url: str, server_pid: int, *, concurrency: int, warmup: float, duration: float, tmp: Path
) -> LoadResult:
    """The same load from ``wrk`` (one thread, ``concurrency`` connections): a warm-up run, then the measured one."""
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY.decode()))
    seconds = max(1, round(duration))
    common = ["wrk", "-t1", f"-c{concurrency}", "-s", str(script), "--latency"]
    if warmup > 0:
        await _wrk([*common, f"-d{max(1, round(warmup))}s", url], warmup + 30)
    meter = CpuMeter(server_pid)
    meter.start()
    out = await _wrk([*common, f"-d{seconds}s", url], seconds + 30)
    meter.stop(client="children")  # wrk has exited and was waited for: a finished child
    total = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", out)
    if total is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    elapsed = float(total.group(2)) * _WRK_UNITS[total.group(3)] / 1000
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    return LoadResult(
        requests=int(total.group(1)) - bad,
        errors=errors + bad,
        seconds=elapsed,
        p50_ms=_wrk_ms(out, "50%"),
        p99_ms=_wrk_ms(out, "99%"),
        server_cpu=meter.server,
        client_cpu=meter.client,
        others_cpu=meter.others,
    )


LoadGenerator = Callable[[str, int], Awaitable[LoadResult]]


def make_generator(args: argparse.Namespace, tmp: Path) -> tuple[LoadGenerator, str]:
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if use_wrk:
        if not shutil.which("wrk"):
            raise SystemExit("bench: --generator wrk, but wrk is not on PATH")

        async def by_wrk(url: str, pid: int) -> LoadResult:
            return await wrk_load(
                url,
                pid,
                concurrency=args.concurrency,
                warmup=args.warmup,
                duration=args.duration,
                tmp=tmp,
            )

        label = f"wrk (1 thread, {args.concurrency} keep-alive connections)"
        return by_wrk, label

    async def by_python(url: str, pid: int) -> LoadResult:
        return await python_load(
            url, pid, concurrency=args.concurrency, warmup=args.warmup, duration=args.duration
        )

    label = f"python aiohttp ClientSession ({args.concurrency} concurrent keep-alive requests)"
    return by_python, label


# ---------------------------------------------------------------------------------------------
# the callback receiver (in this process, on 127.0.0.1)


class Callbacks:
    """The first callback of each run at a ``gateway.testing.Receiver``, by the payload's
    ``run_id``, with the wall-clock time it arrived."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self._read = 0

    def _update(self) -> dict[str, float]:
        received = self.receiver.received
        for request in received[self._read :]:
            try:
                run_id = str(json.loads(request.body)["run_id"])
            except (ValueError, KeyError, TypeError):
                continue
            if run_id in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[run_id] = request.arrived_at
        self._read = len(received)
        return self.arrivals

    async def wait(self, done: Callable[[dict[str, float]], bool], timeout: float) -> None:
        """Until ``done(arrivals)`` holds; ``TimeoutError`` after ``timeout`` seconds."""
        await self.receiver.wait_until(lambda _: done(self._update()), timeout)

    async def arrival(self, run_id: str, timeout: float) -> float:
        """When the run's first callback arrived, waiting for it if need be."""
        await self.wait(lambda arrived: run_id in arrived, timeout)
        return self.arrivals[run_id]


@contextlib.asynccontextmanager
async def callback_receiver() -> AsyncIterator[Callbacks]:
    """A receiver on 127.0.0.1 answering 200 to every callback, while the block runs."""
    receiver = Receiver()
    async with serve(receiver.app()) as base:
        receiver.url = base + "/hook"
        yield Callbacks(receiver)


async def register_endpoint(session: aiohttp.ClientSession, gateway: Server, url: str) -> None:
    payload = {"url": url, "flow_ids": [FLOW_ID], "description": "bench receiver"}
    async with session.post(gateway.url("/api/v1/endpoints"), json=payload) as response:
        if response.status != 201:
            raise RuntimeError(f"endpoint registration: {response.status} {await response.text()}")


async def trigger(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(url, data=BODY, headers=JSON_HEADERS) as response:
        data = await response.json()
        if response.status != 202:
            raise RuntimeError(f"trigger answered {response.status}: {data}")
        return str(data["run_id"])


# ---------------------------------------------------------------------------------------------
# phases


@dataclasses.dataclass
class IngestResult:
    load: LoadResult
    accepted: int  # runs in the database when the window ended
    finished_at_end: int  # of those, finished when the window ended
    drain_seconds: float | None  # time after the window until no run was pending


async def phase_baseline(tmp: Path, generator: LoadGenerator) -> LoadResult:
    server = await start_baseline(tmp)
    try:
        return await generator(server.url(TRIGGER_PATH), server.pid)
    finally:
        await server.stop()


async def phase_ingest(tmp: Path, generator: LoadGenerator, drain_limit: float) -> IngestResult:
    server, db = await start_gateway(tmp, "ingest")
    try:
        load = await generator(server.url(TRIGGER_PATH), server.pid)
        counts = run_counts(db)
        accepted = sum(counts.values())
        unfinished = unfinished_runs(counts)
        finished_at_end = accepted - unfinished
        drain_seconds: float | None = 0.0
        started = time.perf_counter()
        while unfinished:
            if time.perf_counter() - started > drain_limit:
                drain_seconds = None
                break
            await asyncio.sleep(0.1)
            unfinished = unfinished_runs(run_counts(db))
            drain_seconds = time.perf_counter() - started
        if not server.running:
            raise RuntimeError(f"the gateway died:\n{server.stderr_tail()}")
        return IngestResult(load, accepted, finished_at_end, drain_seconds)
    finally:
        await server.stop()


def unfinished_runs(counts: dict[str, int]) -> int:
    return counts.get("pending", 0) + counts.get("running", 0)


@dataclasses.dataclass
class DeliveryResult:
    runs: int
    seconds: float  # first POST → last callback
    ack_seconds: float  # first POST → last 202
    duplicates: int
    cpu: CpuMeter

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


async def measure_delivery(
    server: Server, callbacks: Callbacks, *, triggers: int, concurrency: int, timeout: float
) -> DeliveryResult:
    """``triggers`` triggers, ``concurrency`` in flight, until every callback has arrived
    (after a warm-up: pools, code paths, the dispatcher's connection to the receiver)."""
    url = server.url(TRIGGER_PATH)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await register_endpoint(session, server, callbacks.receiver.url)
        warm = min(50, triggers)
        await asyncio.gather(*(trigger(session, url) for _ in range(warm)))
        await callbacks.wait(lambda arrived: len(arrived) >= warm, timeout)

        meter = CpuMeter(server.pid)
        pending = iter(range(triggers))

        async def fire() -> None:
            for _ in pending:  # shared by all firing tasks
                await trigger(session, url)

        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(fire() for _ in range(concurrency)))
        acked = time.perf_counter() - started
        try:
            await callbacks.wait(lambda arrived: len(arrived) >= warm + triggers, timeout)
        except TimeoutError:
            arrived = len(callbacks.arrivals) - warm
            raise RuntimeError(
                f"only {arrived} of {triggers} callbacks within {timeout:g} s"
            ) from None
        elapsed = time.perf_counter() - started
        meter.stop(client="self")
    return DeliveryResult(triggers, elapsed, acked, callbacks.duplicates, meter)


async def phase_delivery(
    tmp: Path, *, triggers: int, concurrency: int, timeout: float
) -> DeliveryResult:
    server, db = await start_gateway(tmp, "delivery")
    try:
        async with callback_receiver() as callbacks:
            result = await measure_delivery(
                server, callbacks, triggers=triggers, concurrency=concurrency, timeout=timeout
            )
            await settle_deliveries(db)
        return result
    finally:
        await server.stop()


@dataclasses.dataclass
class LatencyResult:
    warmup: int
    callback_ms: list[float]
    ack_ms: list[float]
    stages: dict[str, list[float]]  # ms per stage, from the gateway's own timestamps
    cpu: CpuMeter
    stages_error: str = ""


# Where one idle trigger's time goes, from the timestamps the gateway stores (wall clock, taken
# before each step's commit) and this process's wall clock at both ends.
STAGES = (
    ("POST sent → handler running", "sent", "received_at"),
    ("handler → worker claiming (ingest commit, 202, wake-up)", "received_at", "started_at"),
    ("claim → finishing (claim commit, flow, run_end event)", "started_at", "ended_at"),
    ("finishing → sending (finish commit, dispatcher claim)", "ended_at", "attempt_at"),
    ("sending → callback at the receiver", "attempt_at", "arrived"),
)


def stage_breakdown(db: Path, samples: list[tuple[str, float, float]]) -> dict[str, list[float]]:
    """Per-stage durations (ms) for ``(run_id, sent, arrived)`` samples (wall clock)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT r.run_id, t.received_at, r.started_at, r.ended_at, MIN(a.started_at)"
            " FROM runs r JOIN triggers t ON t.trigger_id = r.trigger_id"
            " JOIN deliveries d ON d.run_id = r.run_id"
            " JOIN attempts a ON a.delivery_id = d.delivery_id GROUP BY r.run_id"
        ).fetchall()
    finally:
        conn.close()
    known = {row[0]: row[1:] for row in rows}
    stages: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for run_id, sent, arrived in samples:
        if run_id not in known:
            continue
        received_at, started_at, ended_at, attempt_at = known[run_id]
        points = {
            "sent": sent,
            "received_at": received_at,
            "started_at": started_at,
            "ended_at": ended_at,
            "attempt_at": attempt_at,
            "arrived": arrived,
        }
        for name, begin, end in STAGES:
            if points[begin] is not None and points[end] is not None:
                stages[name].append((points[end] - points[begin]) * 1000)
    return stages


async def phase_latency(tmp: Path, *, samples: int, warmup: int) -> LatencyResult:
    server, db = await start_gateway(tmp, "latency")
    url = server.url(TRIGGER_PATH)
    callback_ms: list[float] = []
    ack_ms: list[float] = []
    walls: list[tuple[str, float, float]] = []
    meter = CpuMeter(server.pid)
    try:
        async with callback_receiver() as callbacks, aiohttp.ClientSession() as session:
            await register_endpoint(session, server, callbacks.receiver.url)
            for index in range(warmup + samples):
                if index == warmup:
                    meter.start()
                await asyncio.sleep(IDLE_GAP)
                sent = time.time()  # wall clock, as the receiver and the gateway's rows
                run_id = await trigger(session, url)
                acked = time.time()
                arrived = await callbacks.arrival(run_id, CALLBACK_TIMEOUT)
                if index >= warmup:
                    callback_ms.append((arrived - sent) * 1000)
                    ack_ms.append((acked - sent) * 1000)
                    walls.append((run_id, sent, arrived))
            meter.stop(client="self")
            await settle_deliveries(db)
        result = LatencyResult(warmup, callback_ms, ack_ms, {}, meter)
        try:
            result.stages = stage_breakdown(db, walls)
        except sqlite3.Error as exc:  # the schema is not this script's: report, do not fail
            result.stages_error = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        await server.stop()


@dataclasses.dataclass
class CommitResult:
    label: str
    jobs: int
    seconds: float
    batches: int

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


async def _write_triggers(store: Any, pending: Iterator[int]) -> None:
    """Store trigger+run pairs (as ``POST /webhook`` does) until ``pending`` runs out."""
    from gateway import models
    from gateway.store import base

    for _ in pending:
        now = time.time()
        trigger_row = models.Trigger(
            trigger_id=models.new_id(),
            flow_id=FLOW_ID,
            received_at=now,
            method="POST",
            path=TRIGGER_PATH,
            query="",
            headers=dict(JSON_HEADERS),
            body=BODY,
            content_type="application/json",
            source="127.0.0.1",
        )
        run = base.NewRun(
            run_id=models.new_id(),
            flow_id=FLOW_ID,
            input=json.loads(BODY),
            kwargs={"webhook": None},
            metadata={"graph_id": FLOW_ID},
        )
        await store.create_trigger_and_run(trigger_row, run, now)


async def phase_group_commit(tmp: Path, *, jobs: int, concurrency: int) -> list[CommitResult]:
    """Store writes (trigger + run, one transaction each) from ``concurrency`` callers at once,
    with the shipped group-committing writer and with one COMMIT (one fsync) per job."""
    from gateway.log import configure_logging
    from gateway.store.sqlite import SQLiteStore
    from gateway.store.writer import MAX_BATCH

    configure_logging("console", LOG_LEVEL)
    results = []
    for label, max_batch in (("group commit (as shipped)", MAX_BATCH), ("one commit per job", 1)):
        store = SQLiteStore(tmp / f"group-commit-{max_batch}.db", max_batch=max_batch)
        await store.open()
        try:
            writer = store.writer
            pending = iter(range(jobs))  # shared by all callers
            batches0 = writer.batches
            started = time.perf_counter()
            await asyncio.gather(*(_write_triggers(store, pending) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            results.append(CommitResult(label, jobs, elapsed, writer.batches - batches0))
        finally:
            await store.close()
    return results


# ---------------------------------------------------------------------------------------------
# the report


@dataclasses.dataclass
class Report:
    generator: str
    args: argparse.Namespace
    tmp: Path
    baseline: LoadResult | None = None
    ingest: IngestResult | None = None
    delivery: DeliveryResult | None = None
    latency: LatencyResult | None = None
    commits: list[CommitResult] | None = None
    commit_error: str = ""
    busy_machine: list[str] = dataclasses.field(default_factory=list)


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def row(metric: str, value: str, target: str = "", result: str = "") -> str:
    return f"  {metric:<38} {value:>14}   {target:<10} {result}".rstrip()


def header(report: Report) -> list[str]:
    args = report.args
    return [
        "",
        "hookgate benchmark",
        f"  machine      {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"hookgate {git_revision()}",
        f"  generator    {report.generator}",
        f"  load window  {args.duration:g} s after a {args.warmup:g} s warm-up, "
        f"{len(BODY)} B JSON body, all on 127.0.0.1",
        f"  gateway      subprocess, GATEWAY_LOG_LEVEL={LOG_LEVEL} (so logging does not dominate), "
        f"GATEWAY_CONFIG={CONFIG.relative_to(ROOT)},",
        "               a fresh SQLite file per phase in a temporary directory "
        "(WAL, synchronous=FULL; deleted afterwards)",
    ]


def summary(report: Report) -> list[str]:
    out = ["", row("metric", "value", "target", ""), row("-" * 38, "-" * 14, "-" * 10, "----")]
    base, ingest = report.baseline, report.ingest
    if base:
        out.append(row("1. baseline POST, bare aiohttp", f"{base.rps:,.0f} req/s"))
    if ingest:
        out.append(row(f"2. gateway POST {TRIGGER_PATH}", f"{ingest.load.rps:,.0f} req/s"))
    if base and ingest and base.rps:
        ratio = ingest.load.rps / base.rps
        target = f">= {TARGET_RATIO:g}"
        out.append(
            row(
                "3. ratio gateway / baseline",
                f"{ratio:.2f}",
                target,
                verdict(ratio >= TARGET_RATIO),
            )
        )
    if report.delivery:
        out.append(row("4. runs completed and delivered", f"{report.delivery.rate:,.0f} runs/s"))
    if report.latency:
        p50 = percentile(report.latency.callback_ms, 50)
        p99 = percentile(report.latency.callback_ms, 99)
        target = f"<= {TARGET_P50_MS:g} ms"
        out.append(
            row(
                "5. trigger→callback p50, idle",
                f"{p50:.2f} ms",
                target,
                verdict(p50 <= TARGET_P50_MS),
            )
        )
        out.append(row("   trigger→callback p99, idle", f"{p99:.2f} ms"))
    return out


def load_details(report: Report) -> list[str]:
    loads = [
        ("baseline", report.baseline),
        ("gateway", report.ingest.load if report.ingest else None),
    ]
    present = [(name, load) for name, load in loads if load is not None]
    if not present:
        return []
    out = ["", "  load phases (1, 2)" + "".join(f"{name:>22}" for name, _ in present)]

    def line(label: str, cell: Callable[[LoadResult], str]) -> None:
        out.append(f"    {label:<34}" + "".join(f"{cell(load):>22}" for _, load in present))

    line("requests/s", lambda load: f"{load.rps:,.0f}")
    line("failed requests", lambda load: f"{load.errors:,}")
    line("request latency p50 / p99", lambda load: f"{load.p50_ms:.1f} / {load.p99_ms:.1f} ms")
    line("CPU: server", lambda load: percent(load.server_cpu))
    line("CPU: load generator", lambda load: percent(load.client_cpu))
    line("CPU: everything else on the machine", lambda load: percent(load.others_cpu))
    out.append("    (CPU as a share of one core; 'everything else' includes loopback networking")
    out.append("     in the kernel and any other processes running on the machine)")
    if report.ingest:
        ing = report.ingest
        drained = (
            f"{ing.drain_seconds:.1f} s later"
            if ing.drain_seconds is not None
            else "not within the drain limit"
        )
        out.append(
            f"    gateway background runs: {ing.accepted:,} accepted, {ing.finished_at_end:,} "
            f"finished when the window closed, all finished {drained}"
        )
    return out


def delivery_details(report: Report) -> list[str]:
    out = []
    if report.delivery:
        d = report.delivery
        out += [
            "",
            f"  delivery (4): {d.runs:,} triggers, {report.args.concurrency} at a time, one "
            "registered endpoint (a receiver in this process)",
            f"    all acknowledged after {d.ack_seconds:.2f} s, all callbacks received after "
            f"{d.seconds:.2f} s",
            f"    CPU: gateway {percent(d.cpu.server)}, this process (triggers and receiver) "
            f"{percent(d.cpu.client)}, everything else {percent(d.cpu.others)}",
        ]
        if d.duplicates:
            out.append(f"    duplicate callbacks: {d.duplicates}")
    if report.latency:
        lat = report.latency
        out += [
            "",
            f"  idle latency (5): {len(lat.callback_ms)} triggers one at a time, "
            f"{IDLE_GAP * 1000:g} ms apart, after {lat.warmup} unmeasured; CPU: gateway "
            f"{percent(lat.cpu.server)}, everything else {percent(lat.cpu.others)}",
            f"    trigger→callback   p50 {percentile(lat.callback_ms, 50):6.2f} ms   "
            f"p90 {percentile(lat.callback_ms, 90):6.2f} ms   "
            f"p99 {percentile(lat.callback_ms, 99):6.2f} ms   max {max(lat.callback_ms):6.2f} ms",
            f"    trigger→202        p50 {percentile(lat.ack_ms, 50):6.2f} ms   "
            f"p90 {percentile(lat.ack_ms, 90):6.2f} ms   "
            f"p99 {percentile(lat.ack_ms, 99):6.2f} ms   max {max(lat.ack_ms):6.2f} ms",
        ]
        out += stage_rows(lat)
    return out


def stage_rows(lat: LatencyResult) -> list[str]:
    if lat.stages_error:
        return [f"    where the time goes: not available ({lat.stages_error})"]
    if not any(lat.stages.values()):
        return []
    out = [
        "    where the time goes (gateway timestamps; p50 of each stage, so they need not add up):"
    ]
    for name, values in lat.stages.items():
        out.append(
            f"      {name:<58} p50 {percentile(values, 50):6.2f} ms   "
            f"p90 {percentile(values, 90):6.2f} ms"
        )
    return out


def commit_details(report: Report) -> list[str]:
    if report.commit_error:
        return ["", f"  SQLite group commit effect: not measured ({report.commit_error})"]
    if not report.commits:
        return []
    out = [
        "",
        f"  SQLite group commit effect: the store alone, in this process, trigger+run writes "
        f"from {report.args.concurrency} concurrent callers",
    ]
    for result in report.commits:
        per_commit = result.jobs / result.batches if result.batches else math.nan
        out.append(
            f"    {result.label:<28} {result.rate:>8,.0f} writes/s  "
            f"{result.batches:>6,} commits  {per_commit:6.1f} writes/commit"
        )
    if len(report.commits) == 2 and report.commits[1].rate:
        gain = report.commits[0].rate / report.commits[1].rate
        out.append(f"    speed-up from group commit: {gain:.1f}x")
    return out


def warnings(report: Report) -> list[str]:
    out = []
    for note in report.busy_machine:
        out.append(f"  warning: {note}")
    if STOP_PROBLEMS:
        out.append(
            f"  warning: {', '.join(STOP_PROBLEMS)} did not exit within {STOP_TIMEOUT:g} s of "
            "SIGTERM and had to be killed (after measuring: figures unaffected)"
        )
    return ["", *out] if out else []


def print_report(report: Report) -> None:
    out = header(report) + summary(report)
    out += load_details(report) + delivery_details(report) + commit_details(report)
    out += warnings(report)
    print("\n".join(out), flush=True)


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark hookgate's ingest, delivery and latency against a bare aiohttp baseline."
    )
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument(
        "--duration", type=float, help="seconds measured per load phase (default 10, quick 3)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds of warm-up before each load window (default 2, quick 1)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent requests/connections (default 64)"
    )
    parser.add_argument(
        "--triggers", type=int, help="runs in the delivery phase (default 2000, quick 300)"
    )
    parser.add_argument("--samples", type=int, help="idle-latency samples (default 300, quick 50)")
    parser.add_argument(
        "--generator",
        choices=("auto", "python", "wrk"),
        default="auto",
        help="load generator: wrk if on PATH (auto), or the built-in aiohttp one",
    )
    parser.add_argument(
        "--no-group-commit", action="store_true", help="skip the group commit measurement"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each phase, wait up to this many seconds for the machine to be idle "
        "(default 60, quick 10; 0 to skip)",
    )
    parser.add_argument(
        "--database",
        help="compare backends instead: SQLite, then this PostgreSQL database with one process "
        "and with --workers (e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for the second PostgreSQL run (2)"
    )
    parser.add_argument(
        "--langgraph",
        action="store_true",
        help="measure the LangGraph API instead: /runs/wait and background runs with webhooks",
    )
    parser.add_argument(
        "--peer",
        choices=("langgraph",),
        help="with --langgraph: the LangGraph server too (langgraph dev from var/peer-venv)",
    )
    parser.add_argument(
        "--lg-clients", type=int, default=8, help="LangGraph API clients at once (8)"
    )
    parser.add_argument("--lg-runs", type=int, default=500, help="LangGraph background runs (500)")
    parser.add_argument(
        "--lg-rounds",
        type=int,
        default=1,
        help="LangGraph rounds, each hookgate then the peer, reported one by one (1)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        nargs="?",
        const=1_000_000,
        metavar="N",
        help="the backlog benchmark instead (scripts/bench_backlog.py): N pending deliveries "
        "(default 1,000,000) drained; on --database if given",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, short in (
        ("duration", 10.0, 3.0),
        ("warmup", 2.0, 1.0),
        ("triggers", 2000, 300),
        ("samples", 300, 50),
        ("quiet_wait", 60.0, 10.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    if args.duration <= 0 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --concurrency >= 1")
    if args.triggers < 1 or args.samples < 1:
        parser.error("--triggers and --samples must be >= 1")
    return args


async def run(args: argparse.Namespace, tmp: Path) -> Report:
    generator, label = make_generator(args, tmp)
    report = Report(label, args, tmp)
    log(f"load generator: {label}")

    async def quiet(phase: str) -> None:
        busy = await wait_for_quiet(args.quiet_wait)
        if busy is not None:
            note = f"the machine was busy ({busy * 100:.0f}% of a core) before the {phase} phase"
            report.busy_machine.append(note)
            log(f"      {note}")

    log(f"[1/5] baseline: bare aiohttp handler, {args.duration:g} s ...")
    await quiet("baseline")
    report.baseline = await phase_baseline(tmp, generator)
    log(f"      {report.baseline.rps:,.0f} requests/s")

    log(f"[2/5] gateway ingest: POST {TRIGGER_PATH}, {args.duration:g} s ...")
    await quiet("ingest")
    report.ingest = await phase_ingest(tmp, generator, drain_limit=max(30.0, 3 * args.duration))
    log(f"      {report.ingest.load.rps:,.0f} requests/s")

    log(f"[3/5] delivery: {args.triggers} triggers to a registered endpoint ...")
    await quiet("delivery")
    report.delivery = await phase_delivery(
        tmp,
        triggers=args.triggers,
        concurrency=args.concurrency,
        timeout=max(60.0, args.triggers / 20),
    )
    log(f"      {report.delivery.rate:,.0f} runs delivered/s")

    log(f"[4/5] idle latency: {args.samples} triggers one at a time ...")
    await quiet("latency")
    report.latency = await phase_latency(tmp, samples=args.samples, warmup=min(20, args.samples))
    log(f"      p50 {percentile(report.latency.callback_ms, 50):.2f} ms")

    if not args.no_group_commit:
        log("[5/5] SQLite group commit effect ...")
        try:
            report.commits = await phase_group_commit(
                tmp, jobs=500 if args.quick else 3000, concurrency=args.concurrency
            )
        except Exception as exc:  # noqa: BLE001 - optional: the other phases' report stands
            report.commit_error = f"{type(exc).__name__}: {exc}"
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.delivery_timeout = max(60.0, args.triggers / 20)
    if args.backlog:
        import bench_backlog  # scripts/ is on sys.path when this runs as a script

        return bench_backlog.main(args)
    if args.langgraph or args.peer:
        import bench_langgraph  # scripts/ is on sys.path when this runs as a script

        return bench_langgraph.main(args)
    if args.database:
        import bench_backends  # scripts/ is on sys.path when this runs as a script

        return bench_backends.main(args)
    with tempfile.TemporaryDirectory(prefix="hookgate-bench-") as tmpdir:
        tmp = Path(tmpdir)
        budget = 600.0 + 4 * (args.duration + args.warmup) + args.triggers / 10
        try:
            report = asyncio.run(asyncio.wait_for(run(args, tmp), budget))
        except TimeoutError:
            log(f"bench: gave up after {budget:g} s")
            return 1
        except RuntimeError as exc:
            log(f"bench: {exc}")
            return 1
        print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
