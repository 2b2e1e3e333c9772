"""``hookgate serve --workers N``: N gateway processes on one port, supervised by the first.

On PostgreSQL the kernel spreads connections over the children (``SO_REUSEPORT``), so both
run triggers; one that dies is replaced; SIGTERM stops them all cleanly, and so does the
supervisor's own death. On SQLite ``--workers 2`` is refused, saying to use PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.testing import ROOT, GatewayProcess, eventually, gateway_env, serve_command
from tests import pg

PROCESSES = re.compile(r"processes: +2 \(pids (\d+), (\d+)\)")
TRIGGERS = 40


async def children_of(gateway: GatewayProcess) -> set[int]:
    """The children's pids, from the banner's last line."""

    async def listed() -> set[int] | None:
        match = PROCESSES.search("".join(gateway.stdout))
        return {int(pid) for pid in match.groups()} if match else None

    pids: set[int] = await eventually(listed, timeout=10)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def trigger(base: str, count: int) -> set[str]:
    """``count`` echo triggers, each on a connection of its own (the kernel picks a child)."""
    run_ids = set()
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        for n in range(count):
            async with http.post(f"{base}/api/v1/webhook/echo", json={"n": n}) as reply:
                assert reply.status == 202, await reply.text()
                run_ids.add((await reply.json())["run_id"])
    return run_ids


def ran_by(postgres_url: str, run_ids: set[str]) -> dict[int, int]:
    """How many of the finished runs each process ended (its pid is in the run's lease owner)."""
    rows = pg.fetch_rows(
        postgres_url,
        "SELECT run_id, status, split_part(lease_owner, ':', 2) FROM runs",
    )
    done = [(status, int(pid)) for run_id, status, pid in rows if run_id in run_ids]
    assert len(done) == len(run_ids)
    assert {status for status, _ in done} == {"success"}
    counts: dict[int, int] = {}
    for _, pid in done:
        counts[pid] = counts.get(pid, 0) + 1
    return counts


@pytest.mark.timeout(120)
async def test_two_workers_on_postgres_share_one_port_and_the_runs(
    spawn_gateway: Callable[..., GatewayProcess], postgres_url: str
) -> None:
    env = gateway_env(GATEWAY_LOG_LEVEL="warning")
    gateway = spawn_gateway(postgres_url, env, "--workers", "2")
    base = await asyncio.to_thread(gateway.wait_ready, 60)
    children = await children_of(gateway)
    [bin_url] = re.findall(r"test bin: +(\S+)", "".join(gateway.stdout))
    async with aiohttp.ClientSession() as http, http.post(bin_url, data=b"hi") as captured:
        assert captured.status == 200, "the banner's bin is every child's"
    run_ids = await trigger(base, TRIGGERS)

    async def finished() -> dict[int, int] | None:
        try:
            return await asyncio.to_thread(ran_by, postgres_url, run_ids)
        except AssertionError:
            return None

    counts = await eventually(finished, timeout=30)
    assert set(counts) == children, f"runs ended per process: {counts}"

    gateway.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gateway.process.wait, 60) == 0, gateway.diagnostics()
    assert not any(alive(pid) for pid in children)


@pytest.mark.timeout(120)
async def test_a_worker_that_dies_is_replaced_and_the_rest_stop_with_the_supervisor(
    spawn_gateway: Callable[..., GatewayProcess], postgres_url: str
) -> None:
    env = gateway_env(GATEWAY_LOG_LEVEL="warning")
    gateway = spawn_gateway(postgres_url, env, "--workers", "2")
    base = await asyncio.to_thread(gateway.wait_ready, 60)
    dead, survivor = sorted(await children_of(gateway))
    os.kill(dead, signal.SIGKILL)
    replaced = re.compile(rf"worker {dead} exited \(signal 9\); worker (\d+) replaces it")

    async def replacement() -> int | None:
        match = replaced.search(gateway.stderr_tail())
        return int(match.group(1)) if match else None

    new = await eventually(replacement, timeout=20)
    run_ids: set[str] = set()

    async def both_serve() -> bool:
        run_ids.update(await trigger(base, 10))
        try:
            counts = await asyncio.to_thread(ran_by, postgres_url, run_ids)
        except AssertionError:
            return False
        return {survivor, new} <= set(counts)

    await eventually(both_serve, timeout=30, interval=0.5)
    gateway.kill()  # the supervisor dies without a word: its children notice and stop

    async def orphans_gone() -> bool:
        return not alive(survivor) and not alive(new)

    await eventually(orphans_gone, timeout=30)


def test_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command(f"sqlite:///{tmp_path}/gw.db", "--workers", "2"),
        cwd=ROOT,
        env=gateway_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr == (
        "hookgate: --workers 2 needs PostgreSQL: a SQLite database takes one process. Set"
        " GATEWAY_DATABASE_URL=postgresql://user@host:5432/db (or --database) to run several\n"
    )
    assert result.stdout == ""
