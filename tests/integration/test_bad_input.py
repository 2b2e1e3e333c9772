"""Bad input never gives a 5xx and never changes what is stored: durations and moments out of
range, list bounds, metadata filter keys, deeply nested or non-finite JSON, unknown ``select``
fields, and thread states that are not objects. Each class is driven over several routes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway import strictjson
from gateway.settings import Settings
from gateway.store import backend_of
from gateway.testing import Receiver
from tests.database import raw, tables
from tests.integration.helpers import finished_run

DOMAIN_TABLES = (
    "triggers",
    "runs",
    "events",
    "endpoints",
    "deliveries",
    "attempts",
    "threads",
    "thread_states",
    "crons",
)
FAR_SCHEDULE = "0 0 1 1 *"
JSON = {"Content-Type": "application/json"}


async def stored(settings: Settings) -> dict[str, list[str]]:
    """Every row of the domain tables, as committed in the gateway's database."""
    found = await tables(settings.database_url, DOMAIN_TABLES)
    return {table: sorted(repr(row) for row in rows) for table, rows in found.items()}


async def write_directly(settings: Settings, sql: str, params: tuple[Any, ...]) -> None:
    """A row as an older version may have left it (the API refuses to write it now)."""
    await raw(settings.database_url, sql, *params)


async def call(gateway: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Send ``body`` (JSON, or raw text when a ``str``); the status and the decoded answer."""
    data = body if isinstance(body, str) else None if body is None else json.dumps(body)
    response = await gateway.request(method, path, data=data, headers=JSON)
    text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


async def ok(gateway: Any, method: str, path: str, body: Any = None) -> Any:
    """The answer to a request that must succeed."""
    status, answer = await call(gateway, method, path, body)
    assert 200 <= status < 300, answer
    return answer


async def finished_thread_run(gateway: Any, thread_id: str, value: Any) -> dict[str, Any]:
    status, run = await call(
        gateway, "POST", f"/threads/{thread_id}/runs", {"assistant_id": "echo", "input": value}
    )
    assert status == 200, run
    return await finished_run(gateway, run["run_id"])


@pytest.fixture
async def world(gateway: Any) -> dict[str, str]:
    """A thread that ran once, a cron, an endpoint: the ids route templates are filled with."""
    status, thread = await call(gateway, "POST", "/threads", {"metadata": {"kind": "world"}})
    assert status == 200
    run = await finished_thread_run(gateway, thread["thread_id"], {"n": 1})
    status, cron = await call(
        gateway, "POST", "/runs/crons", {"assistant_id": "echo", "schedule": FAR_SCHEDULE}
    )
    assert status == 200, cron
    status, endpoint = await call(
        gateway, "POST", "/api/v1/endpoints", {"url": "http://127.0.0.1:9/hook"}
    )
    assert status == 201, endpoint
    return {
        "thread": thread["thread_id"],
        "run": run["run_id"],
        "cron": cron["cron_id"],
        "endpoint": endpoint["endpoint_id"],
    }


async def refused(
    gateway: Any, settings: Settings, method: str, path: str, body: Any, status: int
) -> str:
    """Assert the request is refused with ``status`` and a detail, storing nothing; the detail."""
    before = await stored(settings)
    got, answer = await call(gateway, method, path, body)
    assert got == status, answer
    assert isinstance(answer, dict), answer
    assert isinstance(answer.get("detail"), str), answer
    assert await stored(settings) == before
    detail: str = answer["detail"]
    return detail


# durations and moments


def run_body(**extra: Any) -> dict[str, Any]:
    return {"assistant_id": "echo", "input": {}, **extra}


def cron_body(**extra: Any) -> dict[str, Any]:
    return {"assistant_id": "echo", "schedule": FAR_SCHEDULE, **extra}


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", "/threads/{thread}/runs", run_body(after_seconds=3e11), "after_seconds"),
        ("POST", "/runs", run_body(after_seconds=366 * 86400), "after_seconds"),
        ("POST", "/runs/wait", run_body(after_seconds=-1), "after_seconds"),
        ("POST", "/threads/{thread}/runs/stream", run_body(after_seconds=True), "after_seconds"),
        ("POST", "/runs/batch", [run_body(after_seconds=1e300)], "after_seconds"),
        ("POST", "/threads", {"ttl": 1e10}, "ttl"),
        ("POST", "/threads", {"ttl": {"ttl": -5}}, "ttl"),
        ("POST", "/threads", {"ttl": {"ttl": 60, "strategy": "never"}}, "strategy"),
        ("PATCH", "/threads/{thread}", {"ttl": True}, "ttl"),
        ("PATCH", "/threads/{thread}", {"ttl": {"ttl": 1e10}}, "ttl"),
        ("POST", "/runs/crons", cron_body(end_time=1e20), "end_time"),
        (
            "POST",
            "/threads/{thread}/runs/crons",
            cron_body(end_time="9999-12-31T23:59:59Z"),
            "end_time",
        ),
        ("POST", "/runs/crons", cron_body(schedule="0 0 31 2 *"), "schedule"),
        ("POST", "/runs/crons", cron_body(timezone="America"), "timezone"),
        ("PATCH", "/runs/crons/{cron}", {"end_time": -1}, "end_time"),
        ("PATCH", "/runs/crons/{cron}", {"schedule": "0 0 30 2 *"}, "schedule"),
        ("PATCH", "/api/v1/endpoints/{endpoint}", {"retry_schedule": [1, 1e12]}, "retry_schedule"),
        ("POST", "/api/v1/endpoints/{endpoint}/recover", {"since": 1e300}, "since"),
        (
            "POST",
            "/api/v1/run/advanced/echo",
            {"inputs": [{"input_value": "x", "client_request_time": 2**70}]},
            "client_request_time",
        ),
    ],
)
async def test_durations_and_moments_out_of_range_are_refused(
    gateway: Any,
    settings: Settings,
    world: dict[str, str],
    method: str,
    path: str,
    body: Any,
    named: str,
) -> None:
    detail = await refused(gateway, settings, method, path.format(**world), body, 422)
    assert named in detail


async def test_a_year_of_after_seconds_is_still_accepted(gateway: Any) -> None:
    status, run = await call(gateway, "POST", "/runs", run_body(after_seconds=365 * 86400))
    assert status == 200, run
    starts = datetime.fromisoformat(run["created_at"])
    assert starts > datetime.now(UTC) + timedelta(days=364)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/threads/{thread}/runs", 200),
        ("GET", "/threads/{thread}/runs/{run}", 200),
        ("GET", "/threads/{thread}", 200),
        ("GET", "/api/v1/runs/{run}", 200),
        ("GET", "/inspect/", 200),
        ("GET", "/inspect/runs", 200),
        ("GET", "/inspect/runs/{run}", 200),
        ("DELETE", "/threads/{thread}", 204),
    ],
)
async def test_moments_out_of_range_already_stored_still_show(
    gateway: Any, settings: Settings, world: dict[str, str], method: str, path: str, status: int
) -> None:
    """Rows written before the API bounded its moments: shown clamped, never a 500."""
    status_, pending = await call(
        gateway, "POST", f"/threads/{world['thread']}/runs", run_body(after_seconds=3600)
    )
    assert status_ == 200, pending
    await write_directly(
        settings,
        "UPDATE runs SET created_at = ? WHERE run_id = ?",
        (time.time() + 3e11, pending["run_id"]),
    )
    await write_directly(
        settings,
        "UPDATE runs SET created_at = ?, started_at = ?, ended_at = ? WHERE run_id = ?",
        (1e300, -1e13, 1e20, world["run"]),
    )
    await write_directly(
        settings, "UPDATE threads SET updated_at = ? WHERE thread_id = ?", (1e20, world["thread"])
    )
    response = await gateway.request(method, path.format(**world))
    assert response.status == status, (await response.text())[:300]
    if response.content_type == "application/json":
        text = await response.text()
        assert "9999-12-31T23:59:59" in text or "0001-01-01" in text or not text


async def test_event_ids_beyond_any_integer_are_refused(
    gateway: Any, world: dict[str, str]
) -> None:
    response = await gateway.get(
        f"/threads/{world['thread']}/runs/{world['run']}/stream",
        headers={"Last-Event-ID": "9" * 5000},
    )
    assert response.status == 422
    assert "Last-Event-ID" in (await response.json())["detail"]


# limit and offset


BEYOND = 2**63


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("GET", "/threads/{thread}/runs?limit=-1", None, "limit"),
        ("GET", "/threads/{thread}/runs?offset=-5", None, "offset"),
        ("GET", "/threads/{thread}/runs?limit=0", None, "limit"),
        ("GET", "/threads/{thread}/runs?limit=1001", None, "limit"),
        ("GET", f"/threads/{{thread}}/runs?limit={BEYOND}", None, "limit"),
        ("GET", f"/threads/{{thread}}/runs?offset={BEYOND}", None, "offset"),
        ("GET", "/threads/{thread}/runs?limit=1.5", None, "limit"),
        ("GET", "/threads/{thread}/runs?offset=" + "9" * 40, None, "offset"),
        ("POST", "/threads/search", {"limit": BEYOND}, "limit"),
        ("POST", "/threads/search", {"offset": BEYOND}, "offset"),
        ("POST", "/threads/search", {"offset": -1}, "offset"),
        ("POST", "/threads/search", {"limit": True}, "limit"),
        ("POST", "/threads/search", {"limit": "10"}, "limit"),
        ("POST", "/runs/crons/search", {"limit": BEYOND}, "limit"),
        ("POST", "/runs/crons/search", {"offset": BEYOND * 4}, "offset"),
        ("POST", "/runs/crons/search", {"offset": -1}, "offset"),
        ("POST", "/assistants/search", {"limit": 0}, "limit"),
        ("POST", "/assistants/search", {"offset": BEYOND}, "offset"),
        ("POST", "/threads/{thread}/history", {"limit": BEYOND}, "limit"),
        ("GET", "/threads/{thread}/history?limit=-1", None, "limit"),
        ("GET", f"/api/v1/deliveries?limit={BEYOND}", None, "limit"),
    ],
)
async def test_limit_and_offset_out_of_bounds_are_refused(
    gateway: Any,
    settings: Settings,
    world: dict[str, str],
    method: str,
    path: str,
    body: Any,
    named: str,
) -> None:
    detail = await refused(gateway, settings, method, path.format(**world), body, 422)
    assert named in detail


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/threads/{{thread}}/runs?limit=1000&offset={2**53 - 1}", None),
        ("POST", "/threads/search", {"limit": 1000, "offset": 2**53 - 1}),
        ("POST", "/runs/crons/search", {"limit": 1000, "offset": 2**53 - 1}),
        ("POST", "/assistants/search", {"limit": 1000, "offset": 2**53 - 1}),
    ],
)
async def test_the_largest_page_is_an_empty_one(
    gateway: Any, world: dict[str, str], method: str, path: str, body: Any
) -> None:
    status, answer = await call(gateway, method, path.format(**world), body)
    assert (status, answer) == (200, [])


# metadata filter keys


KEYS = ['a"b', "back\\slash", "nul", "nul\x00key", "a.b", "k[0]", "$", "", "it's", "a"]


@pytest.mark.parametrize("key", KEYS)
async def test_metadata_filter_keys_match_literally(
    gateway: Any, settings: Settings, key: str
) -> None:
    """Every key means itself: ``a.b`` is not ``a`` then ``b``, a NUL does not end a key.
    PostgreSQL cannot hold a NUL in ``jsonb``: there it is refused with 422 and found nowhere."""
    no_nul = backend_of(settings.database_url) == "postgres"
    owners: dict[str, dict[str, str]] = {}
    for each in KEYS:
        status, thread = await call(gateway, "POST", "/threads", {"metadata": {each: 7}})
        if no_nul and "\x00" in each:
            status_of_cron, cron = await call(
                gateway, "POST", "/runs/crons", cron_body(metadata={each: 7})
            )
            assert (status, status_of_cron) == (422, 422), (thread, cron)
            owners[each] = {"thread": "", "cron": ""}
            continue
        assert status == 200, thread
        status, cron = await call(gateway, "POST", "/runs/crons", cron_body(metadata={each: 7}))
        assert status == 200, cron
        owners[each] = {"thread": thread["thread_id"], "cron": cron["cron_id"]}
    await call(gateway, "POST", "/threads", {"metadata": {"a": {"b": 7}, "k": [7]}})
    await call(gateway, "POST", "/runs/crons", cron_body(metadata={"a": {"b": 7}, "k": [7]}))

    wanted = {"metadata": {key: 7}, "limit": 100}
    expected = {kind: [owner] if owner else [] for kind, owner in owners[key].items()}
    status, threads = await call(gateway, "POST", "/threads/search", wanted)
    assert status == 200, threads
    assert [t["thread_id"] for t in threads] == expected["thread"]
    count = len(expected["thread"])
    assert (await call(gateway, "POST", "/threads/count", wanted)) == (200, count)
    status, found = await call(gateway, "POST", "/runs/crons/search", wanted)
    assert status == 200, found
    assert [c["cron_id"] for c in found] == expected["cron"]
    assert (await call(gateway, "POST", "/runs/crons/count", wanted)) == (200, count)


async def test_metadata_filter_values_match_by_type(gateway: Any) -> None:
    values = {"true": True, "one": 1, "text": "1", "null": None, "object": {"b": 1}, "list": [1]}
    ids = {}
    for name, value in values.items():
        status, thread = await call(gateway, "POST", "/threads", {"metadata": {"v": value}})
        assert status == 200, thread
        ids[name] = thread["thread_id"]
    for name, value in values.items():
        status, found = await call(gateway, "POST", "/threads/search", {"metadata": {"v": value}})
        assert [t["thread_id"] for t in found] == [ids[name]], name
    status, found = await call(gateway, "POST", "/threads/search", {"metadata": {"v": 1.0}})
    assert [t["thread_id"] for t in found] == [ids["one"]]
    status, found = await call(gateway, "POST", "/threads/search", {"metadata": {"v": 1, "w": 2}})
    assert found == []


# deeply nested and non-finite JSON


DEEP = '{"input": ' + "[" * 1000 + "]" * 1000 + "}"
NOT_FINITE = ['{"input": NaN}', '{"limit": Infinity}', '{"x": -Infinity}', '{"x": 1e999}']
JUST_TOO_DEEP = '{"input": ' + "[" * strictjson.MAX_DEPTH + "]" * strictjson.MAX_DEPTH + "}"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/assistants/search", 422),
        ("POST", "/assistants/count", 422),
        ("POST", "/threads", 422),
        ("POST", "/threads/search", 422),
        ("POST", "/threads/count", 422),
        ("PATCH", "/threads/{thread}", 422),
        ("POST", "/threads/{thread}/state", 422),
        ("POST", "/threads/{thread}/state/checkpoint", 422),
        ("POST", "/threads/{thread}/history", 422),
        ("POST", "/threads/{thread}/runs", 422),
        ("POST", "/threads/{thread}/runs/stream", 422),
        ("POST", "/threads/{thread}/runs/wait", 422),
        ("POST", "/threads/{thread}/runs/crons", 422),
        ("POST", "/runs", 422),
        ("POST", "/runs/stream", 422),
        ("POST", "/runs/wait", 422),
        ("POST", "/runs/batch", 422),
        ("POST", "/runs/cancel", 422),
        ("POST", "/runs/crons", 422),
        ("POST", "/runs/crons/search", 422),
        ("POST", "/runs/crons/count", 422),
        ("PATCH", "/runs/crons/{cron}", 422),
        ("POST", "/api/v1/run/echo", 422),
        ("POST", "/api/v1/run/advanced/echo", 422),
        ("POST", "/api/v1/build/echo/flow", 422),
        ("POST", "/api/v1/endpoints", 400),
        ("PATCH", "/api/v1/endpoints/{endpoint}", 400),
        ("POST", "/api/v1/endpoints/{endpoint}/rotate-secret", 400),
        ("POST", "/api/v1/endpoints/{endpoint}/recover", 400),
    ],
)
async def test_deep_or_non_finite_json_is_refused_on_every_json_route(
    gateway: Any, settings: Settings, world: dict[str, str], method: str, path: str, status: int
) -> None:
    """The route's answer to a body that is not JSON it takes (400, or 422 as the peer API
    answers), saying why; nothing is stored."""
    for body in (DEEP, JUST_TOO_DEEP):
        detail = await refused(gateway, settings, method, path.format(**world), body, status)
        assert f"nested deeper than {strictjson.MAX_DEPTH} levels" in detail
    for body in NOT_FINITE:
        detail = await refused(gateway, settings, method, path.format(**world), body, status)
        assert "finite" in detail


def strict(body: bytes) -> Any:
    """Parse as a strict JSON reader would: no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize("body", [DEEP, *NOT_FINITE])
async def test_webhook_takes_json_it_cannot_keep_as_text(
    gateway: Any, receiver: Receiver, body: str
) -> None:
    """A webhook sender's event is never lost: JSON the gateway could not sign again as valid
    JSON is the flow's input as text (Langflow's rule for any body that is not JSON), and the
    signed callback is strict JSON."""
    response = await gateway.post(
        f"/api/v1/webhook/echo?webhook={receiver.url}", data=body, headers=JSON
    )
    assert response.status == 202, await response.text()
    run = await finished_run(gateway, (await response.json())["run_id"])
    assert run["status"] == "success"
    assert run["values"] == {"payload": body}
    [callback] = await receiver.wait_for(1)
    assert strict(callback.body)["values"] == {"payload": body}
    trigger_page = await gateway.get(f"/inspect/triggers/{run['metadata']['trigger_id']}")
    assert trigger_page.status == 200


# select


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/threads/{thread}/runs?select=bogus", None),
        ("GET", "/threads/{thread}/runs?select=run_id&select=values", None),
        ("POST", "/threads/search", {"select": ["bogus"]}),
        ("POST", "/threads/search", {"select": "thread_id"}),
        ("POST", "/threads/search", {"select": [1]}),
        ("POST", "/runs/crons/search", {"select": ["cron_id", "bogus"]}),
        ("POST", "/assistants/search", {"select": ["nope"]}),
    ],
)
async def test_select_outside_the_fields_is_refused(
    gateway: Any, settings: Settings, world: dict[str, str], method: str, path: str, body: Any
) -> None:
    detail = await refused(gateway, settings, method, path.format(**world), body, 422)
    assert "select" in detail


@pytest.mark.parametrize(
    ("method", "path", "body", "fields"),
    [
        ("GET", "/threads/{thread}/runs?select=run_id&select=status", None, {"run_id", "status"}),
        ("POST", "/threads/search", {"select": ["thread_id", "values"]}, {"thread_id", "values"}),
        ("POST", "/runs/crons/search", {"select": ["cron_id"]}, {"cron_id"}),
        (
            "POST",
            "/assistants/search",
            {"select": ["graph_id", "version"]},
            {"graph_id", "version"},
        ),
    ],
)
async def test_select_picks_the_fields(
    gateway: Any, world: dict[str, str], method: str, path: str, body: Any, fields: set[str]
) -> None:
    status, found = await call(gateway, method, path.format(**world), body)
    assert status == 200, found
    assert found
    assert all(set(item) == fields for item in found)


# thread state


NEVER_RAN_STATE = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


async def test_a_thread_that_never_ran_has_the_peers_empty_state(gateway: Any) -> None:
    """What LangGraph's server answers for a thread with no checkpoint (``Threads.State.get``
    without a graph, then ``state_snapshot_to_thread_state``)."""
    thread_id = (await ok(gateway, "POST", "/threads", {}))["thread_id"]
    assert await ok(gateway, "GET", f"/threads/{thread_id}/state") == NEVER_RAN_STATE
    assert await ok(gateway, "POST", f"/threads/{thread_id}/history", {}) == []
    assert (await ok(gateway, "GET", f"/threads/{thread_id}"))["values"] is None


@pytest.mark.parametrize("output", [True, 7, "done", 2.5])
async def test_a_scalar_flow_output_is_not_a_thread_state(gateway: Any, output: Any) -> None:
    """Only objects and arrays are states (LangGraph's ``ThreadState.values``): a run that
    returns a scalar leaves the thread's state as it was, on every route that shows it."""
    thread_id = (await ok(gateway, "POST", "/threads", {}))["thread_id"]
    await finished_thread_run(gateway, thread_id, output)
    assert await ok(gateway, "GET", f"/threads/{thread_id}/state") == NEVER_RAN_STATE

    await finished_thread_run(gateway, thread_id, {"n": 1})
    await finished_thread_run(gateway, thread_id, output)
    state = await ok(gateway, "GET", f"/threads/{thread_id}/state")
    assert state["values"] == {"n": 1}
    history = await ok(gateway, "POST", f"/threads/{thread_id}/history", {})
    assert [h["values"] for h in history] == [{"n": 1}]
    assert (await ok(gateway, "GET", f"/threads/{thread_id}"))["values"] == {"n": 1}
    [found] = await ok(gateway, "POST", "/threads/search", {"ids": [thread_id]})
    assert found["values"] == {"n": 1}
    checkpoint_id = state["checkpoint"]["checkpoint_id"]
    at = await ok(gateway, "GET", f"/threads/{thread_id}/state/{checkpoint_id}")
    assert at["values"] == {"n": 1}


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", "/threads/{thread}/state", {"values": True}, "values"),
        ("POST", "/threads/{thread}/state", {"values": "text"}, "values"),
        ("POST", "/threads/{thread}/state", {"values": {"n": 2}, "as_node": 3}, "as_node"),
        ("POST", "/threads", {"supersteps": [{"updates": [{"values": 1}]}]}, "values"),
        ("POST", "/threads", {"supersteps": [{"updates": [{"values": {}}, "x"]}]}, "updates"),
        ("POST", "/threads", {"supersteps": ["x"]}, "supersteps"),
    ],
)
async def test_a_state_update_must_be_an_object_or_array(
    gateway: Any,
    settings: Settings,
    world: dict[str, str],
    method: str,
    path: str,
    body: Any,
    named: str,
) -> None:
    detail = await refused(gateway, settings, method, path.format(**world), body, 422)
    assert named in detail


async def test_state_updates_merge_and_null_keeps_the_state(
    gateway: Any, world: dict[str, str]
) -> None:
    thread_id = world["thread"]
    for values in ({"m": 2}, None, [{"role": "user"}]):
        await ok(gateway, "POST", f"/threads/{thread_id}/state", {"values": values})
    history = await ok(gateway, "POST", f"/threads/{thread_id}/history", {})
    assert [h["values"] for h in history] == [
        [{"role": "user"}],
        {"n": 1, "m": 2},
        {"n": 1, "m": 2},
        {"n": 1},
    ]


async def test_supersteps_build_the_state_in_order(gateway: Any) -> None:
    steps = [{"updates": [{"values": {"a": 1}}]}, {"updates": [{"values": {"b": 2}}]}]
    thread = await ok(gateway, "POST", "/threads", {"supersteps": steps})
    assert thread["values"] == {"a": 1, "b": 2}
