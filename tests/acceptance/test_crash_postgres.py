"""The three-process crash test: three ``hookgate serve`` on one PostgreSQL database share a
burst of triggers; one is SIGKILLed mid-burst and never restarted.

Every trigger a process acknowledged (202: the trigger and its run committed) must end in a
successful run and a delivered callback at each real receiver, each run's callbacks under one
``webhook-id``; the two survivors must take over the runs and deliveries the dead one held
within 15 s (its leases, 10 s, lapse; the next poll claims them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest

from gateway.testing import GatewayProcess, Receiver, gateway_env
from tests.acceptance.test_crash import (
    CONCURRENCY,
    KILL_AFTER,
    TRIGGERS,
    callback_run_ids,
    check_callbacks,
    register,
    wait_until_recovered,
)

pytestmark = pytest.mark.slow

TAKEOVER_WITHIN = 15.0  # seconds from the kill until the dead one's work is claimed again
WHOLE_TEST_WITHIN = 60.0

# The shipped leases (10 s, renewed every 2 s) and poll (1 s): takeover takes what it would.
CRASH_ENV = {
    "GATEWAY_RETRY_SCHEDULE": "0.2,0.5,1",
    "GATEWAY_RETRY_JITTER": "0",
    "GATEWAY_DELIVERY_TIMEOUT": "2",
    "GATEWAY_LOG_FORMAT": "json",
    "GATEWAY_LOG_LEVEL": "warning",
}

Held = dict[str, dict[str, int]]


async def held_by(db: asyncpg.Connection, pid: int) -> Held:
    """The runs and deliveries whose lease the process ``pid`` holds, with their try counts."""
    owner = "split_part(lease_owner, ':', 2) = $1"
    runs = await db.fetch(
        f"SELECT run_id, attempt FROM runs WHERE status = 'running' AND {owner}", str(pid)
    )
    deliveries = await db.fetch(
        "SELECT delivery_id, attempts FROM deliveries WHERE status = 'pending'"
        f" AND lease_expires_at IS NOT NULL AND {owner}",
        str(pid),
    )
    return {"runs": dict(map(tuple, runs)), "deliveries": dict(map(tuple, deliveries))}


async def spread_then_kill(
    http: aiohttp.ClientSession, bases: list[str], victim: GatewayProcess, db: asyncpg.Connection
) -> tuple[dict[int, str], dict[int, str], Held, float]:
    """``TRIGGERS`` echo triggers, round robin over ``bases``, ``CONCURRENCY`` at a time;
    ``victim`` is SIGKILLed once ``KILL_AFTER`` were acknowledged. Returns ``{n: run_id}``
    acknowledged, ``{n: error}`` for the triggers the kill broke, what the victim held when it
    died, and when that was."""
    acknowledged: dict[int, str] = {}
    broken: dict[int, str] = {}
    held: Held = {}
    killed_at = 0.0
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def trigger(n: int) -> None:
        nonlocal killed_at
        async with semaphore:
            base = bases[n % len(bases)]
            try:
                async with http.post(f"{base}/api/v1/webhook/echo", json={"n": n}) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                broken[n] = f"{type(exc).__name__}: {exc}"
                return
            assert status == 202, (status, body)
            acknowledged[n] = json.loads(body)["run_id"]
            if len(acknowledged) == KILL_AFTER:
                victim.kill()
                killed_at = time.monotonic()
                held.update(await held_by(db, victim.process.pid))

    await asyncio.gather(*(trigger(n) for n in range(TRIGGERS)))
    return acknowledged, broken, held, killed_at


async def not_taken_over(db: asyncpg.Connection, held: Held) -> int:
    """How many of ``held`` no survivor has claimed again (nor ended) yet."""
    runs = await db.fetch(
        "SELECT run_id FROM runs r JOIN unnest($1::text[], $2::int[]) AS h(id, tries)"
        " ON r.run_id = h.id WHERE r.status = 'running' AND r.attempt = h.tries",
        list(held["runs"]),
        list(held["runs"].values()),
    )
    deliveries = await db.fetch(
        "SELECT delivery_id FROM deliveries d JOIN unnest($1::text[], $2::int[]) AS h(id, tries)"
        " ON d.delivery_id = h.id WHERE d.status = 'pending' AND d.attempts = h.tries",
        list(held["deliveries"]),
        list(held["deliveries"].values()),
    )
    return len(runs) + len(deliveries)


async def wait_for_takeover(db: asyncpg.Connection, held: Held, killed_at: float) -> float:
    """Seconds from the kill until every run and delivery the dead process held was claimed
    by another (or ended); gives up at twice ``TAKEOVER_WITHIN``."""
    while await not_taken_over(db, held):
        if time.monotonic() - killed_at > TAKEOVER_WITHIN * 2:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - killed_at


@pytest.mark.timeout(120)
async def test_three_gateways_lose_one_and_the_others_take_its_work_over(
    spawn_gateway: Callable[..., GatewayProcess],
    postgres_url: str,
    receiver: Receiver,
    slow_receiver: Receiver,
) -> None:
    started = time.monotonic()
    env = gateway_env(**CRASH_ENV)
    gateways = [spawn_gateway(postgres_url, env) for _ in range(3)]
    bases = list(await asyncio.gather(*(asyncio.to_thread(g.wait_ready) for g in gateways)))
    victim = gateways[1]
    receivers = (receiver, slow_receiver)
    db = await asyncpg.connect(postgres_url)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            secrets = [await register(http, bases[0], r.url) for r in receivers]
            acknowledged, broken, held, killed_at = await spread_then_kill(http, bases, victim, db)
            assert held, f"only {len(acknowledged)} acknowledged: the kill never came"
            took_over = await wait_for_takeover(db, held, killed_at)
            await wait_until_recovered(http, bases[0], acknowledged.values(), receivers)
    finally:
        await db.close()
    elapsed = time.monotonic() - started

    assert victim.process.returncode == -9
    assert broken, "the kill broke no trigger: it came too late to test anything"
    assert held["runs"] or held["deliveries"], "the dead one held nothing to take over"
    assert took_over <= TAKEOVER_WITHIN, f"its work was taken over {took_over:.1f} s after"
    inputs = {run_id: n for n, run_id in acknowledged.items()}
    repeats = [check_callbacks(r, s, inputs) for r, s in zip(receivers, secrets, strict=True)]
    for r in receivers:
        assert callback_run_ids(r) >= set(acknowledged.values())
    assert elapsed < WHOLE_TEST_WITHIN, f"the test took {elapsed:.0f} s"
    print(
        f"acknowledged={len(acknowledged)} broken={len(broken)}"
        f" held_by_the_dead={ {k: len(v) for k, v in held.items()} }"
        f" taken_over_in={took_over:.1f}s repeated_callbacks={repeats} whole_test={elapsed:.1f}s"
    )
