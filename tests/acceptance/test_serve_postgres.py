"""``hookgate serve`` on PostgreSQL: two processes share one database, each trigger is called
back once; a database that cannot be reached stops the start with one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from gateway.testing import ROOT, GatewayProcess, Receiver, eventually, gateway_env, serve_command

TRIGGERS = 20


@pytest.mark.timeout(90)
async def test_two_gateways_on_one_database_call_back_every_trigger_once(
    spawn_gateway: Callable[..., GatewayProcess], postgres_url: str, receiver: Receiver
) -> None:
    env = gateway_env(GATEWAY_LOG_LEVEL="warning")
    gateways = [spawn_gateway(postgres_url, env) for _ in range(2)]
    bases = await asyncio.gather(*(asyncio.to_thread(g.wait_ready) for g in gateways))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(f"{bases[0]}/api/v1/endpoints", json={"url": receiver.url}) as reply:
            assert reply.status == 201, await reply.text()
        run_ids = set()
        for n in range(TRIGGERS):
            async with http.post(f"{bases[n % 2]}/api/v1/webhook/echo", json={"n": n}) as reply:
                assert reply.status == 202, await reply.text()
                run_ids.add((await reply.json())["run_id"])
        for base in bases:  # each process sees the runs the other stored
            async with http.get(f"{base}/api/v1/runs/{sorted(run_ids)[0]}") as reply:
                assert reply.status == 200

    async def called_back() -> bool:
        return {json.loads(c.body)["run_id"] for c in receiver.received} >= run_ids

    await eventually(called_back, timeout=30)
    per_run = Counter(json.loads(c.body)["run_id"] for c in receiver.received)
    assert set(per_run) == run_ids
    assert set(per_run.values()) == {1}, "each run's ending is delivered once"


def test_an_unreachable_database_stops_the_start_with_one_line() -> None:
    result = subprocess.run(
        serve_command("postgresql://hookgate:pw@127.0.0.1:1/gateway"),
        cwd=ROOT,
        env=gateway_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert lines == [
        "hookgate: cannot reach PostgreSQL at 127.0.0.1:1/gateway: "
        "[Errno 111] Connect call failed ('127.0.0.1', 1)"
    ]
