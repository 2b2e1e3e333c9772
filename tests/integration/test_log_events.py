"""The structured log events the README lists, as ``hookgate serve`` writes them: one JSON line
per step, with the ids bound, and no secret in any of them. The app logs through its own
configuration (``gateway.log.configure_logging``) into this test's stderr."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from gateway import log
from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver, eventually

API_KEY = "api-key-for-the-log-events-test"
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLWxvZy1ldmVudHM="
README_EVENTS = (
    "trigger_received",
    "run_started",
    "run_completed",
    "delivery_attempted",
    "delivery_succeeded",
    "delivery_retry_scheduled",
    "delivery_failed",
)


@pytest.fixture
def json_logs() -> Iterator[Callable[[], None]]:
    """Configures logging as ``hookgate serve`` does, into the stderr ``capsys`` captures
    (so it is called inside the test, where that capture is active)."""

    def configure() -> None:
        log.configure_logging("json", "info")
        structlog.configure(cache_logger_on_first_use=False)  # the next test logs elsewhere

    root = logging.getLogger()
    level = root.level
    yield configure
    for handler in [h for h in root.handlers if h.get_name() == "hookgate"]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def events(output: str) -> dict[str, list[dict[str, Any]]]:
    """Every line parsed as JSON (a line that is not is a failure), grouped by event name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in output.splitlines():
        entry = json.loads(line)
        assert {"event", "level", "timestamp"} <= entry.keys(), line
        found.setdefault(entry["event"], []).append(entry)
    return found


async def test_each_step_is_one_json_line_with_its_ids_and_no_secret(
    json_logs: Callable[[], None],
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_logs()
    settings = make_settings(api_key=API_KEY, signing_secret=SIGNING_SECRET)
    gateway = await aiohttp_client(create_app(settings))
    headers = {"x-api-key": API_KEY}
    receiver.script(500, 200)
    good = await (
        await gateway.post("/api/v1/endpoints", json={"url": receiver.url}, headers=headers)
    ).json()
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    dead = await (
        await gateway.post(
            "/api/v1/endpoints", json={"url": dead_url, "retry_schedule": [0.01]}, headers=headers
        )
    ).json()
    response = await gateway.post(
        "/api/v1/webhook/echo",
        json={"n": 1},
        headers={**headers, "Authorization": "Bearer bearer-token-of-the-sender"},
    )
    run_id = (await response.json())["run_id"]
    request_id = response.headers["x-request-id"]
    delivered = await settled_delivery_of(gateway, run_id, good["endpoint_id"], "succeeded")
    failed = await settled_delivery_of(gateway, run_id, dead["endpoint_id"], "failed")

    output = capsys.readouterr().err
    found = events(output)
    for name in README_EVENTS:
        assert name in found, f"no {name} event"
        assert all(entry["run_id"] == run_id for entry in found[name]), name
    [received] = found["trigger_received"]
    assert received["flow_id"] == "echo"
    assert received["request_id"] == request_id
    assert received["trigger_id"]
    assert found["run_started"][0]["flow_id"] == "echo"
    [completed] = found["run_completed"]
    assert (completed["status"], completed["deliveries"]) == ("success", 2)

    def of(name: str, delivery: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in found[name] if e["delivery_id"] == delivery["delivery_id"]]

    assert [e["status_code"] for e in of("delivery_attempted", delivered)] == [500, 200]
    assert [e["attempt"] for e in of("delivery_retry_scheduled", delivered)] == [1]
    assert [e["attempt"] for e in of("delivery_succeeded", delivered)] == [2]
    assert {e["endpoint_id"] for e in of("delivery_attempted", delivered)} == {good["endpoint_id"]}
    assert [e["attempt"] for e in of("delivery_failed", failed)] == [2]
    assert "connection failed" in of("delivery_attempted", failed)[0]["error"]

    for secret in (
        API_KEY,
        SIGNING_SECRET,
        SIGNING_SECRET[6:],
        good["secret"],
        good["secret"][6:],
        dead["secret"][6:],
        "bearer-token-of-the-sender",
    ):
        assert secret not in output, f"{secret[:10]}… was logged"


async def settled_delivery_of(
    gateway: Any, run_id: str, endpoint_id: str, status: str
) -> dict[str, Any]:
    """The run's delivery to one endpoint, once it reached ``status``."""

    async def one() -> dict[str, Any] | None:
        response = await gateway.get(
            "/api/v1/deliveries",
            params={"run_id": run_id, "endpoint_id": endpoint_id},
            headers={"x-api-key": API_KEY},
        )
        found: list[dict[str, Any]] = await response.json()
        return found[0] if found and found[0]["status"] == status else None

    found: dict[str, Any] = await eventually(one)
    return found
