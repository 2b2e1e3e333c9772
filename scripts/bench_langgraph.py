"""The LangGraph API under load: hookgate (durable, SQLite) and, with ``--peer langgraph``, the
LangGraph server itself, driven by the same load code in one run.

Started by ``scripts/bench.py --langgraph`` (hookgate alone) or ``--peer langgraph`` (both).
The flow is the two-step ``agent`` graph of config/flows/demo.py; the peer serves an equivalent
StateGraph (two nodes, the same updates) with ``langgraph dev``, in memory.

The peer is never a dependency of hookgate: it lives in its own virtualenv under the ignored
``var/peer-venv`` (``python -m venv var/peer-venv && var/peer-venv/bin/pip install
"langgraph-cli[inmem]"``), and this script only runs it when asked.

Measured, each as the clients see it:

1. stateless ``POST /runs/wait``, ``--lg-clients`` clients back to back: answers/s, p50, p99;
2. ``--lg-runs`` background threaded runs with a ``webhook``: each client creates a thread and a
   run on it (``POST /threads``, ``POST /threads/{id}/runs``); creates/s and the latency of the
   pair (p50/p99), then runs delivered/s until every webhook reached a receiver in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import aiohttp
import bench
import bench_backends

from gateway.testing import ROOT, free_port

PEER_VENV = ROOT / "var" / "peer-venv"
INPUT = {"topic": "ice cream"}
ASSISTANT = "agent"

PEER_GRAPH = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    topic: str
    joke: str


def refine_topic(state: State) -> State:
    return {"topic": state.get("topic", "") + " and cats"}


def generate_joke(state: State) -> State:
    return {"joke": f"This is a joke about {state['topic']}"}


builder = StateGraph(State)
builder.add_node("refine_topic", refine_topic)
builder.add_node("generate_joke", generate_joke)
builder.add_edge(START, "refine_topic")
builder.add_edge("refine_topic", "generate_joke")
builder.add_edge("generate_joke", END)
graph = builder.compile()
"""

PEER_CONFIG = (
    '{"dependencies": ["."], "graphs": {"agent": "./agent.py:graph"},'
    ' "webhooks": {"url": {"disable_loopback": false, "require_https": false}}}'
)  # the receiver is plain http on 127.0.0.1, which the peer refuses by default


class Served(Protocol):
    """A server under load: hookgate (``bench.Server``) or the peer (``PeerServer``)."""

    name: str

    @property
    def pid(self) -> int: ...

    def url(self, path: str) -> str: ...

    async def stop(self) -> None: ...


@dataclasses.dataclass
class PeerServer:
    """``langgraph dev``, started in its project directory (the tests' launcher starts
    processes in the repository and reads a hookgate-style banner)."""

    name: str
    process: asyncio.subprocess.Process
    base_url: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), bench.STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


@dataclasses.dataclass
class WaitResult:
    answers: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    cpu: bench.CpuMeter

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0


@dataclasses.dataclass
class BackgroundResult:
    runs: int
    create_seconds: float  # first create → last run created
    delivered_seconds: float  # first create → last webhook received
    create_ms: list[float]  # POST /threads + POST /threads/{id}/runs, per run
    cpu: bench.CpuMeter

    @property
    def creates(self) -> float:
        return self.runs / self.create_seconds if self.create_seconds else 0.0

    @property
    def delivered(self) -> float:
        return self.runs / self.delivered_seconds if self.delivered_seconds else 0.0


@dataclasses.dataclass
class ServerResult:
    name: str
    wait: WaitResult
    background: BackgroundResult


async def _post(session: aiohttp.ClientSession, url: str, body: Mapping[str, object]) -> object:
    async with session.post(url, json=body) as response:
        data = await response.json()
        if response.status >= 300:
            raise RuntimeError(f"POST {url} answered {response.status}: {data}")
        return data


async def wait_load(server: Served, *, clients: int, warmup: float, duration: float) -> WaitResult:
    """``clients`` clients calling stateless ``/runs/wait`` back to back."""
    url = server.url("/runs/wait")
    body = {"assistant_id": ASSISTANT, "input": INPUT}
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    meter = bench.CpuMeter(server.pid)

    async def client(session: aiohttp.ClientSession) -> None:
        while (sent := time.perf_counter()) < window_end:
            try:
                await _post(session, url, body)
                ok = True
            except (aiohttp.ClientError, RuntimeError, TimeoutError, OSError):
                ok = False
                await asyncio.sleep(0.01)
            done = time.perf_counter()
            if window_start <= done < window_end:
                counts["ok" if ok else "errors"] += 1
                if ok and sent >= window_start:
                    latencies.append((done - sent) * 1000)

    async def window() -> None:
        await asyncio.sleep(warmup)
        meter.start()
        await asyncio.sleep(duration)
        meter.stop(client="self")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(window(), *(client(session) for _ in range(clients)))
    return WaitResult(counts["ok"], duration, latencies, counts["errors"], meter)


async def background_load(
    server: Served, *, clients: int, runs: int, timeout: float
) -> BackgroundResult:
    """``runs`` threaded background runs with a webhook, ``clients`` creating at once."""
    create_ms: list[float] = []
    async with bench.callback_receiver() as callbacks:
        body = {"assistant_id": ASSISTANT, "input": INPUT, "webhook": callbacks.receiver.url}

        async def create(session: aiohttp.ClientSession) -> None:
            sent = time.perf_counter()
            thread = await _post(session, server.url("/threads"), {})
            assert isinstance(thread, dict)
            await _post(session, server.url(f"/threads/{thread['thread_id']}/runs"), body)
            create_ms.append((time.perf_counter() - sent) * 1000)

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            warm = min(20, runs)
            await asyncio.gather(*(create(session) for _ in range(warm)))
            await callbacks.wait(lambda arrived: len(arrived) >= warm, timeout)
            create_ms.clear()
            pending = iter(range(runs))

            async def client() -> None:
                for _ in pending:  # shared by all clients
                    await create(session)

            meter = bench.CpuMeter(server.pid)
            meter.start()
            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            created = time.perf_counter() - started
            try:
                await callbacks.wait(lambda arrived: len(arrived) >= warm + runs, timeout)
            except TimeoutError:
                raise RuntimeError(
                    f"{server.name}: only {len(callbacks.arrivals) - warm} of {runs} webhooks "
                    f"within {timeout:g} s"
                ) from None
            delivered = time.perf_counter() - started
            meter.stop(client="self")
    return BackgroundResult(runs, created, delivered, create_ms, meter)


async def start_hookgate(tmp: Path) -> Served:
    backend = bench_backends.Backend("hookgate", f"sqlite:///{tmp / 'langgraph.db'}", 1)
    return await bench_backends.start(backend, tmp)


async def start_peer(tmp: Path) -> Served:
    """``langgraph dev`` on a free loopback port, serving the two-node graph in memory."""
    cli = PEER_VENV / "bin" / "langgraph"
    if not cli.exists():
        raise RuntimeError(
            f"no LangGraph CLI at {cli}: python -m venv var/peer-venv && "
            'var/peer-venv/bin/pip install "langgraph-cli[inmem]"'
        )
    project = tmp / "peer"
    project.mkdir(exist_ok=True)
    (project / "agent.py").write_text(PEER_GRAPH)
    (project / "langgraph.json").write_text(PEER_CONFIG)
    port = free_port()
    argv = [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false"}
    env["LANGGRAPH_CLI_NO_ANALYTICS"] = "1"
    env["LOG_LEVEL"] = "WARNING"
    stderr_path = tmp / "peer.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=project,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
        )
    server = PeerServer("langgraph dev", proc, f"http://127.0.0.1:{port}", stderr_path)
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"langgraph dev exited:\n{server.stderr_tail()}")
            try:
                async with session.get(server.url("/ok")) as response:
                    if response.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    await server.stop()
    raise RuntimeError(f"langgraph dev was not ready within 90 s:\n{server.stderr_tail()}")


async def measure(name: str, server: Served, args: argparse.Namespace) -> ServerResult:
    bench.log(f"  {name}: POST /runs/wait, {args.lg_clients} clients, {args.duration:g} s ...")
    wait = await wait_load(
        server, clients=args.lg_clients, warmup=args.warmup, duration=args.duration
    )
    bench.log(f"    {wait.rate:,.1f} answers/s")
    await bench.wait_for_quiet(args.quiet_wait)
    bench.log(f"  {name}: {args.lg_runs} background threaded runs with a webhook ...")
    background = await background_load(
        server, clients=args.lg_clients, runs=args.lg_runs, timeout=max(60.0, args.lg_runs / 5)
    )
    bench.log(f"    {background.creates:,.1f} creates/s, {background.delivered:,.1f} delivered/s")
    return ServerResult(name, wait, background)


async def run(args: argparse.Namespace, tmp: Path) -> list[list[ServerResult]]:
    """``--lg-rounds`` rounds, each measuring hookgate then the peer, so that both see the
    machine's quieter and busier spells alike."""
    starters = [("hookgate", start_hookgate)]
    if args.peer == "langgraph":
        starters.append(("langgraph dev", start_peer))
    rounds = []
    for round_number in range(1, args.lg_rounds + 1):
        if args.lg_rounds > 1:
            bench.log(f"round {round_number} of {args.lg_rounds}")
        results = []
        for name, starter in starters:
            await bench.wait_for_quiet(args.quiet_wait)
            server = await starter(tmp)
            try:
                results.append(await measure(name, server, args))
            finally:
                await server.stop()
        rounds.append(results)
    return rounds


def _cell(values: list[float], q: float) -> str:
    return f"{bench.percentile(values, q):.0f}"


def _cpu_ms(cpu: bench.CpuMeter, seconds: float, runs: int) -> str:
    """The server's CPU per run: steadier than a rate on a machine others share."""
    if cpu.server is None or not runs:
        return "n/a"
    return f"{cpu.server * seconds / runs * 1000:.1f}"


def report(rounds: list[list[ServerResult]], args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        f"LangGraph API, the agent graph, {args.lg_clients} clients "
        f"({args.duration:g} s of /runs/wait; {args.lg_runs} background runs)",
        "| round | server | /runs/wait answers/s | p50 / p99 ms | creates/s "
        "| create p50 / p99 ms | delivered runs/s | server CPU ms per run (wait, background) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ratios = []
    for number, results in enumerate(rounds, 1):
        for r in results:
            w, b = r.wait, r.background
            lines.append(
                f"| {number} | {r.name} | {w.rate:,.1f} | {_cell(w.latencies_ms, 50)} / "
                f"{_cell(w.latencies_ms, 99)} | {b.creates:,.1f} | {_cell(b.create_ms, 50)} / "
                f"{_cell(b.create_ms, 99)} | {b.delivered:,.1f} "
                f"| {_cpu_ms(w.cpu, w.seconds, w.answers)}, "
                f"{_cpu_ms(b.cpu, b.delivered_seconds, b.runs)} |"
            )
        if len(results) == 2 and results[1].wait.rate and results[1].background.delivered:
            ours, peer = results
            ratios.append(
                f"round {number}, hookgate / peer: "
                f"/runs/wait {ours.wait.rate / peer.wait.rate:.1f}x, "
                f"creates {ours.background.creates / peer.background.creates:.1f}x, "
                f"delivered {ours.background.delivered / peer.background.delivered:.1f}x"
            )
    return lines + ratios


def main(args: argparse.Namespace) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hookgate-bench-") as tmp:
        try:
            rounds = asyncio.run(run(args, Path(tmp)))
        except RuntimeError as exc:
            bench.log(f"bench: {exc}")
            return 1
    print("\n".join(report(rounds, args)))
    return 0
