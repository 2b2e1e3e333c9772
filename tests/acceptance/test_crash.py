"""The crash test: SIGKILL the gateway mid-load; every acknowledged trigger still runs and calls back.

A 202 means the trigger and its run were committed. So after ``kill -9`` and a restart on
the same database, each acknowledged run must end in success and each endpoint must get its
callback, signed, at least once, and only ever under one ``webhook-id``. The restarted gateway
is the file's only process: it takes back at once what the dead one held, without waiting for
its leases to lapse, so the work in flight at the kill resumes within seconds of the restart.
A second gateway on the same file is refused.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import standardwebhooks

from gateway.testing import ROOT, GatewayProcess, Receiver, gateway_env, serve_command

pytestmark = pytest.mark.slow

TRIGGERS = 300
CONCURRENCY = 32
KILL_AFTER = 150  # acknowledged triggers before the SIGKILL
RECOVERY_TIMEOUT = 30.0
RESUME_WITHIN = 5.0  # seconds from the restart until the work held at the kill is claimed again

# The shipped leases (10 s, renewed every 2 s): longer than RESUME_WITHIN, so the work the dead
# process held resumes in time only because the restarted gateway takes it back at once.
CRASH_ENV = {
    "GATEWAY_RETRY_SCHEDULE": "0.2,0.5,1",
    "GATEWAY_RETRY_JITTER": "0",
    "GATEWAY_LEASE_SECONDS": "10",
    "GATEWAY_HEARTBEAT_SECONDS": "2",
    "GATEWAY_DELIVERY_TIMEOUT": "1",
    "GATEWAY_POLL_INTERVAL": "0.1",
    "GATEWAY_LOG_FORMAT": "json",
}


async def register(http: aiohttp.ClientSession, base: str, url: str) -> str:
    """Create an endpoint for ``url``; return its signing secret."""
    async with http.post(f"{base}/api/v1/endpoints", json={"url": url}) as response:
        assert response.status == 201, await response.text()
        secret: str = (await response.json())["secret"]
    return secret


async def trigger_then_kill(
    http: aiohttp.ClientSession, base: str, gateway: GatewayProcess
) -> tuple[dict[int, str], dict[int, str]]:
    """Fire ``TRIGGERS`` echo triggers, ``CONCURRENCY`` at a time; SIGKILL after ``KILL_AFTER`` 202s.

    Returns ``{n: run_id}`` for the acknowledged ones and ``{n: error}`` for those the kill broke.
    """
    acknowledged: dict[int, str] = {}
    broken: dict[int, str] = {}
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def trigger(n: int) -> None:
        async with semaphore:
            try:
                async with http.post(f"{base}/api/v1/webhook/echo", json={"n": n}) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                broken[n] = f"{type(exc).__name__}: {exc}"
                return
            # A dead process answers nothing at all, so any answer must be the 202.
            assert status == 202, (status, body)
            acknowledged[n] = json.loads(body)["run_id"]
            if len(acknowledged) == KILL_AFTER:
                gateway.kill()

    await asyncio.gather(*(trigger(n) for n in range(TRIGGERS)))
    return acknowledged, broken


def work_left(database: Path) -> dict[str, int]:
    """What the killed process left unfinished, read from its database file (read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        runs = dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        pending, leased = conn.execute(
            "SELECT COUNT(*), COUNT(lease_expires_at) FROM deliveries WHERE status = 'pending'"
        ).fetchone()
    conn.close()
    return {
        "runs_pending": runs.get("pending", 0),
        "runs_running": runs.get("running", 0),
        "runs_finished": sum(v for k, v in runs.items() if k not in ("pending", "running")),
        "deliveries_pending": pending,
        "deliveries_in_flight": leased,
    }


def held_at_kill(database: Path) -> dict[str, dict[str, int]]:
    """The runs and deliveries the killed process held a lease on, with their try counts."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        runs = conn.execute("SELECT run_id, attempt FROM runs WHERE status = 'running'")
        deliveries = conn.execute(
            "SELECT delivery_id, attempts FROM deliveries"
            " WHERE status = 'pending' AND lease_expires_at IS NOT NULL"
        )
        held = {"runs": dict(runs.fetchall()), "deliveries": dict(deliveries.fetchall())}
    conn.close()
    return held


def still_waiting(database: Path, held: dict[str, dict[str, int]]) -> int:
    """How many of ``held`` have not been claimed again (nor ended) since the kill."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        runs = dict(conn.execute("SELECT run_id, attempt FROM runs WHERE status = 'running'"))
        deliveries = dict(
            conn.execute("SELECT delivery_id, attempts FROM deliveries WHERE status = 'pending'")
        )
    conn.close()
    waiting = [r for r, tries in held["runs"].items() if runs.get(r) == tries]
    waiting += [d for d, tries in held["deliveries"].items() if deliveries.get(d) == tries]
    return len(waiting)


async def wait_until_resumed(database: Path, held: dict[str, dict[str, int]]) -> float:
    """Seconds until every run and delivery held at the kill was claimed again or ended."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while waiting := await asyncio.to_thread(still_waiting, database, held):
        if loop.time() - started > RECOVERY_TIMEOUT:
            raise AssertionError(f"{waiting} of the runs and deliveries held at the kill wait on")
        await asyncio.sleep(0.05)
    return loop.time() - started


def callback_run_ids(receiver: Receiver) -> set[str]:
    return {json.loads(callback.body)["run_id"] for callback in receiver.received}


async def wait_until_recovered(
    http: aiohttp.ClientSession,
    base: str,
    run_ids: Iterable[str],
    receivers: Iterable[Receiver],
) -> None:
    """Poll until every run succeeded, every receiver has each run's callback, nothing is due."""
    expected = set(run_ids)
    unfinished = set(expected)
    semaphore = asyncio.Semaphore(16)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_TIMEOUT

    async def get_json(path: str) -> Any:
        async with semaphore, http.get(f"{base}{path}") as response:
            assert response.status == 200, (path, response.status, await response.text())
            return await response.json()

    async def status_of(run_id: str) -> tuple[str, str]:
        return run_id, (await get_json(f"/api/v1/runs/{run_id}"))["status"]

    while True:
        for run_id, status in await asyncio.gather(*(status_of(r) for r in unfinished)):
            assert status in ("pending", "running", "success"), (run_id, status)
            if status == "success":
                unfinished.discard(run_id)
        missing = [len(expected - callback_run_ids(receiver)) for receiver in receivers]
        due = await get_json("/api/v1/deliveries?status=pending")
        if not unfinished and not any(missing) and not due:
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"not recovered within {RECOVERY_TIMEOUT} s: {len(unfinished)} runs unfinished,"
                f" callbacks missing per receiver {missing}, {len(due)} deliveries still pending"
            )
        await asyncio.sleep(0.2)


def check_callbacks(receiver: Receiver, secret: str, inputs: dict[str, int]) -> int:
    """Every callback verifies; a run's repeats share one webhook-id. Returns the repeat count."""
    webhook = standardwebhooks.Webhook(secret)
    ids_by_run: dict[str, set[str]] = defaultdict(set)
    for callback in receiver.received:
        payload = webhook.verify(callback.body, callback.headers)
        assert payload["status"] == "success"
        assert payload["flow_id"] == "echo"
        if payload["run_id"] in inputs:
            assert payload["values"] == {"n": inputs[payload["run_id"]]}
        ids_by_run[payload["run_id"]].add(callback.headers["webhook-id"])
    reused = {run_id: ids for run_id, ids in ids_by_run.items() if len(ids) != 1}
    assert not reused, f"runs called back under several webhook-ids: {reused}"
    per_run = Counter(json.loads(callback.body)["run_id"] for callback in receiver.received)
    return sum(count - 1 for count in per_run.values())


@pytest.mark.timeout(120)
async def test_acknowledged_triggers_survive_sigkill(
    spawn_gateway: Callable[..., GatewayProcess],
    receiver: Receiver,
    slow_receiver: Receiver,
    tmp_path: Path,
) -> None:
    database = tmp_path / "gw.db"
    env = gateway_env(**CRASH_ENV)
    receivers = (receiver, slow_receiver)
    timeout = aiohttp.ClientTimeout(total=10)

    first = spawn_gateway(f"sqlite:///{database}", env)
    base = await asyncio.to_thread(first.wait_ready)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        secrets = [await register(http, base, r.url) for r in receivers]
        acknowledged, broken = await trigger_then_kill(http, base, first)

    assert first.process.returncode == -9
    assert len(acknowledged) >= KILL_AFTER
    assert broken, "the kill broke no trigger: it came too late to test anything"
    left = work_left(database)
    held = held_at_kill(database)
    before_restart = [len(set(acknowledged.values()) - callback_run_ids(r)) for r in receivers]
    # The crash must leave work behind, some of it under a lease that has to expire first.
    assert left["runs_pending"] + left["deliveries_pending"] > 0, left
    assert left["runs_running"] + left["deliveries_in_flight"] > 0, left

    second = spawn_gateway(f"sqlite:///{database}", env)
    base = await asyncio.to_thread(second.wait_ready)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = asyncio.get_running_loop().time()
        resumed = await wait_until_resumed(database, held)
        await wait_until_recovered(http, base, acknowledged.values(), receivers)
        recovery = asyncio.get_running_loop().time() - started
    assert resumed <= RESUME_WITHIN, f"the work held at the kill resumed after {resumed:.1f} s"

    inputs = {run_id: n for n, run_id in acknowledged.items()}
    repeats = [check_callbacks(r, s, inputs) for r, s in zip(receivers, secrets, strict=True)]
    print(
        f"acknowledged={len(acknowledged)} broken={len(broken)} left_at_kill={left}"
        f" callbacks_missing_at_kill={before_restart} held_resumed_in={resumed:.1f}s"
        f" recovered_in={recovery:.1f}s"
        f" repeated_callbacks={repeats}"
    )


@pytest.mark.timeout(60)
async def test_a_second_gateway_on_the_same_file_is_refused(
    spawn_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'gw.db'}"
    first = spawn_gateway(database_url, gateway_env(GATEWAY_LOG_FORMAT="json"))
    base = await asyncio.to_thread(first.wait_ready)
    second = await asyncio.to_thread(
        subprocess.run,
        serve_command(database_url),
        cwd=ROOT,
        env=gateway_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 2, second
    assert second.stderr.splitlines()[-1].startswith(
        f"hookgate: another gateway (pid {first.process.pid}) is serving {tmp_path / 'gw.db'}:"
    ), second.stderr
    assert "use PostgreSQL" in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stdout == ""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
        assert response.status == 200, "the first one serves on"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_RETRY_SCHEDULE": "abc"}, "hookgate: retry_schedule: expected seconds"),
        ({"GATEWAY_PORT": "eighty"}, "hookgate: port: expected int"),
        ({"GATEWAY_CONFIG": "config/missing.toml"}, "hookgate: config file not found"),
    ],
)
def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        serve_command(f"sqlite:///{tmp_path / 'gw.db'}"),
        cwd=ROOT,
        env=gateway_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "gw.db").exists()
