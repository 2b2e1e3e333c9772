"""Operator commands on a live database: ``hookgate deliveries``, ``replay`` and ``endpoints``.

The gateway runs in-process and really sends (to a port where nothing listens, so its deliveries
die quickly on the compressed schedule, and to a real receiver); meanwhile the CLI runs as a
subprocess on the same SQLite file, as an operator would next to a running gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from aiohttp.test_utils import TestClient

from gateway import log
from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver, eventually

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gateway.toml"
UNKNOWN = "01900000-0000-7000-8000-000000000000"


async def hookgate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway <args> --database <url>``, without blocking the in-process gateway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONFIG"] = str(CONFIG)
    command = [sys.executable, "-m", "gateway", *args, "--database", database_url]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"hookgate {' '.join(args)} did not finish within 30 s") from None
    assert process.returncode is not None
    result = subprocess.CompletedProcess(
        command, process.returncode, stdout.decode(), stderr.decode()
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclasses.dataclass
class Live:
    """A running gateway whose database holds 3 dead deliveries and 3 delivered ones."""

    gateway: TestClient[Any, Any]
    database_url: str
    port: int  # nothing listens here (yet)
    dead: dict[str, Any]  # the endpoint on that port, with its secret
    good: dict[str, Any]  # an endpoint on a working receiver
    runs: list[str]
    failed: set[str]
    succeeded: set[str]

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await hookgate(self.database_url, *args)

    async def deliveries(self, **query: str) -> list[dict[str, Any]]:
        response = await self.gateway.get("/api/v1/deliveries", params=query)
        result: list[dict[str, Any]] = await response.json()
        return result


@pytest.fixture
async def live(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
) -> Live:
    settings = make_settings(circuit_failure_threshold=100)
    gateway: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    port = free_port()
    dead = await (
        await gateway.post("/api/v1/endpoints", json={"url": f"http://127.0.0.1:{port}/hook"})
    ).json()
    good = await (await gateway.post("/api/v1/endpoints", json={"url": receiver.url})).json()
    runs = []
    for n in range(3):
        response = await gateway.post("/api/v1/webhook/echo", json={"n": n})
        assert response.status == 202
        runs.append((await response.json())["run_id"])
    live = Live(gateway, settings.database_url, port, dead, good, runs, set(), set())

    async def settled() -> bool:
        failed = await live.deliveries(status="failed")
        succeeded = await live.deliveries(status="succeeded")
        live.failed = {d["delivery_id"] for d in failed}
        live.succeeded = {d["delivery_id"] for d in succeeded}
        return len(failed) == len(succeeded) == 3

    await eventually(settled)
    return live


async def test_list_shows_deliveries_and_its_filters_work(live: Live) -> None:
    table, failed, good, run, limited, pending = await asyncio.gather(
        live.cli("deliveries", "list"),
        live.cli("deliveries", "list", "--status", "failed", "--json"),
        live.cli("deliveries", "list", "--endpoint", live.good["endpoint_id"], "--json"),
        live.cli("deliveries", "list", "--run", live.runs[0], "--json"),
        live.cli("deliveries", "list", "--limit", "2", "--json"),
        live.cli("deliveries", "list", "--status", "pending"),
    )
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "ATTEMPTS", "LAST", "EVENT", "URL", "CREATED"]
    assert {row.split()[0] for row in rows} == live.failed | live.succeeded
    for row in rows:
        delivery_id, status, attempts = row.split()[:3]
        if delivery_id in live.failed:
            assert (status, attempts) == ("failed", "3")
            assert "connection failed" in row
            assert f"127.0.0.1:{live.port}/hook" in row
        else:
            assert (status, attempts, row.split()[3]) == ("succeeded", "1", "200")
        assert "run.success" in row

    dead = json_lines(failed.stdout)
    assert {d["delivery_id"] for d in dead} == live.failed
    assert all(d["status"] == "failed" and d["attempts"] == 3 for d in dead)
    assert all(d["endpoint_id"] == live.dead["endpoint_id"] for d in dead)
    assert all("connection failed" in d["last_error"] for d in dead)

    sent = json_lines(good.stdout)
    assert {d["delivery_id"] for d in sent} == live.succeeded
    assert all(d["last_status_code"] == 200 for d in sent)

    of_run = json_lines(run.stdout)
    assert len(of_run) == 2
    assert {d["run_id"] for d in of_run} == {live.runs[0]}

    assert len(json_lines(limited.stdout)) == 2
    assert (pending.returncode, pending.stdout.strip()) == (0, "no deliveries")


async def test_show_prints_the_delivery_and_every_attempt(live: Live) -> None:
    dead_id, good_id = sorted(live.failed)[0], sorted(live.succeeded)[0]
    text, as_json, delivered = await asyncio.gather(
        live.cli("deliveries", "show", dead_id),
        live.cli("deliveries", "show", dead_id, "--json"),
        live.cli("deliveries", "show", good_id),
    )
    assert text.returncode == 0, text.stderr
    assert re.search(rf"^delivery\s+{dead_id}$", text.stdout, re.M)
    assert re.search(r"^status\s+failed$", text.stdout, re.M)
    assert re.search(rf"^endpoint\s+{live.dead['endpoint_id']}$", text.stdout, re.M)
    attempts = [line for line in text.stdout.splitlines() if re.match(r"^[123] ", line)]
    assert len(attempts) == 3
    assert all("connection failed" in line and " ms " in line for line in attempts)

    view = json.loads(as_json.stdout)
    assert view["delivery_id"] == dead_id
    assert [a["attempt"] for a in view["attempt_log"]] == [1, 2, 3]
    assert all(a["status_code"] is None for a in view["attempt_log"])
    assert all("connection failed" in a["error"] for a in view["attempt_log"])
    assert view["payload"]["run_id"] == view["run_id"]

    assert delivered.returncode == 0, delivered.stderr
    [attempt] = [line for line in delivered.stdout.splitlines() if line.startswith("1 ")]
    assert " 200 " in attempt
    assert attempt.endswith("ok"), "the first bytes of the response body"


async def test_replay_one_delivery_sends_it_again_with_its_webhook_id(
    live: Live, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = Receiver()
    await aiohttp_server(receiver.app(), host="127.0.0.1", port=live.port)
    delivery_id = sorted(live.failed)[0]

    result = await live.cli("replay", delivery_id)
    assert result.returncode == 0, result.stderr
    assert f"delivery {delivery_id} is due now" in result.stdout
    assert "a running gateway sends it" in result.stdout

    [call] = await receiver.wait_for(1)
    assert call.headers["webhook-id"] == delivery_id
    standardwebhooks.Webhook(live.dead["secret"]).verify(call.body, call.headers)

    async def delivered() -> bool:
        return delivery_id in {d["delivery_id"] for d in await live.deliveries(status="succeeded")}

    await eventually(delivered)
    shown = json.loads((await live.cli("deliveries", "show", delivery_id, "--json")).stdout)
    assert (shown["status"], shown["attempts"]) == ("succeeded", 4)
    assert shown["attempt_log"][-1]["status_code"] == 200
    still_dead = await live.cli("deliveries", "list", "--status", "failed", "--json")
    assert {d["delivery_id"] for d in json_lines(still_dead.stdout)} == live.failed - {delivery_id}


async def test_bulk_replay_by_endpoint_waits_and_shows_progress_until_all_delivered(
    live: Live, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = Receiver()
    await aiohttp_server(receiver.app(), host="127.0.0.1", port=live.port)
    endpoint_id = live.dead["endpoint_id"]

    result = await live.cli("replay", "--endpoint", endpoint_id, "--wait", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"replayed 3 deliveries (endpoint {endpoint_id}, status failed)"
    assert any(re.fullmatch(r"\d/3 delivered, \d failed(, \d pending.*)?", line) for line in lines)
    assert lines[-1] == "3/3 delivered, 0 failed"

    calls = await receiver.wait_for(3)
    assert len(calls) == 3
    assert {call.headers["webhook-id"] for call in calls} == live.failed
    for call in calls:
        standardwebhooks.Webhook(live.dead["secret"]).verify(call.body, call.headers)
    after = json_lines(
        (await live.cli("deliveries", "list", "--endpoint", endpoint_id, "--json")).stdout
    )
    assert {(d["status"], d["attempts"]) for d in after} == {("succeeded", 4)}

    again = await live.cli("replay", "--endpoint", endpoint_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("replayed 0 deliveries")


async def test_bulk_replay_without_wait_then_a_wait_that_ends_in_failures(live: Live) -> None:
    endpoint_id = live.dead["endpoint_id"]
    future = str(time.time() + 3600)
    none = await live.cli("replay", "--endpoint", endpoint_id, "--since", future)
    assert (none.returncode, none.stdout.splitlines()[0].split()[:2]) == (0, ["replayed", "0"])

    result = await live.cli(
        "replay", "--endpoint", endpoint_id, "--since", "2000-01-01T00:00:00Z", "--status", "failed"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("replayed 3 deliveries")
    assert "a running gateway sends them on its next poll" in result.stdout

    async def dead_again() -> bool:
        failed = await live.deliveries(status="failed", endpoint_id=endpoint_id)
        return len(failed) == 3 and all(d["attempts"] == 4 for d in failed)

    await eventually(dead_again)  # nothing listens yet: one more try each, and dead again
    waited = await live.cli("replay", "--endpoint", endpoint_id, "--wait", "--timeout", "20")
    assert waited.returncode == 1
    assert waited.stdout.splitlines()[-1] == "0/3 delivered, 3 failed"
    assert waited.stderr.strip() == (
        "hookgate: 3 of 3 not delivered; see hookgate deliveries list --status failed"
    )


async def test_replay_says_when_the_endpoint_holds_its_deliveries(live: Live) -> None:
    endpoint_id = live.dead["endpoint_id"]
    assert (await live.gateway.post(f"/api/v1/endpoints/{endpoint_id}/pause")).status == 200
    result = await live.cli("replay", "--endpoint", endpoint_id)
    assert result.returncode == 0, result.stderr
    assert f"note: endpoint {endpoint_id} is paused: its deliveries wait until it is resumed" in (
        result.stdout
    )
    listed = await live.cli("deliveries", "list", "--endpoint", endpoint_id, "--json")
    assert {d["status"] for d in json_lines(listed.stdout)} == {"pending"}


async def test_replay_wait_times_out_when_no_gateway_sends(live: Live) -> None:
    await live.gateway.close()  # the gateway stops: nobody sends what is replayed
    result = await live.cli(
        "replay", "--endpoint", live.dead["endpoint_id"], "--wait", "--timeout", "1"
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "0/3 delivered, 0 failed, 3 pending"
    assert result.stderr.startswith("hookgate: timed out after 1 s with 3 still pending")
    assert len(result.stderr.splitlines()) == 1


async def test_endpoints_list_never_prints_a_secret(live: Live) -> None:
    table, as_json = await asyncio.gather(
        live.cli("endpoints", "list"), live.cli("endpoints", "list", "--json")
    )
    assert table.returncode == 0, table.stderr
    for output in (table, as_json):
        for endpoint in (live.dead, live.good):
            assert endpoint["secret"] not in output.stdout + output.stderr
            assert endpoint["secret"][6:-2] not in output.stdout + output.stderr
            assert log.mask(endpoint["secret"]) in table.stdout

    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "URL", "STATE", "FILTERS", "FAILURES", "SECRET"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id[live.dead["endpoint_id"]][1:5] == [live.dead["url"], "active", "all", "9"]
    assert by_id[live.good["endpoint_id"]][1:5] == [live.good["url"], "active", "all", "0"]

    views = {e["endpoint_id"]: e for e in json_lines(as_json.stdout)}
    assert set(views) == {live.dead["endpoint_id"], live.good["endpoint_id"]}
    assert views[live.dead["endpoint_id"]]["consecutive_failures"] == 9
    assert views[live.dead["endpoint_id"]]["state"] == "active"
    for endpoint in (live.dead, live.good):
        assert views[endpoint["endpoint_id"]]["secret"] == log.mask(endpoint["secret"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deliveries", "show", UNKNOWN), f"hookgate: unknown delivery {UNKNOWN}"),
        (("replay", UNKNOWN), f"hookgate: unknown delivery {UNKNOWN}"),
        (("replay", "--endpoint", UNKNOWN), f"hookgate: unknown endpoint {UNKNOWN}"),
        (("replay", "--run", UNKNOWN, "--wait"), f"hookgate: unknown run {UNKNOWN}"),
        (("deliveries", "list", "--endpoint", UNKNOWN), f"hookgate: unknown endpoint {UNKNOWN}"),
    ],
)
async def test_unknown_ids_exit_1_with_one_line(
    gateway: Any, settings: Settings, args: tuple[str, ...], message: str
) -> None:
    result = await hookgate(settings.database_url, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deliveries", "list", "--status", "bogus"), "invalid choice: 'bogus'"),
        (("deliveries", "list", "--limit", "0"), "expected at least 1"),
        (("deliveries",), "hookgate deliveries: error:"),
        (("replay",), "give a delivery id, or --endpoint"),
        (("replay", UNKNOWN, "--endpoint", UNKNOWN), "not both"),
        (("replay", "--endpoint", UNKNOWN, "--since", "yesterday"), "RFC 3339 date-time or epoch"),
        (("replay", "--endpoint", UNKNOWN, "--timeout", "soon"), "expected a duration"),
        (
            ("replay", "--endpoint", UNKNOWN, "--since", "2030-01-01", "--until", "2020-01-01"),
            "--until must be after --since",
        ),
    ],
)
async def test_bad_arguments_exit_2(
    gateway: Any, settings: Settings, args: tuple[str, ...], message: str
) -> None:
    result = await hookgate(settings.database_url, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gw.db"
    result = await hookgate(f"sqlite:///{missing}", "deliveries", "list")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"hookgate: no database at {missing} (see --database)\n"
    assert not missing.parent.exists()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a database\n")
    result = await hookgate(f"sqlite:///{garbage}", "endpoints", "list")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"hookgate: {garbage} is not a SQLite database (see --database)\n"
