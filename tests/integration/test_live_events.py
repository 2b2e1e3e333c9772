"""A run's events reach its readers live, with no polling to fall back on.

Every reader also re-reads the store now and then (every ``poll_interval``), which would hide
an event that never reached it live behind a short delay. Here that interval is an hour, so
each answer below arrives only if every event, the run's end included, was handed over live:
a wait, a stream, a run that had to queue behind another on its thread, and a join.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.settings import FlowSettings, Settings
from tests.integration.test_langgraph_streams import FINAL, parse_sse

NO_POLLING = 3600.0
ANSWER_WITHIN = 20.0  # seconds: far beyond a live answer, far below one polling round


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    shipped: Settings = make_settings(poll_interval=NO_POLLING)
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


async def _call(gateway: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST ``body`` (GET without one), answered within ``ANSWER_WITHIN``."""
    async with asyncio.timeout(ANSWER_WITHIN):
        if body is None:
            response = await gateway.get(path)
        else:
            response = await gateway.post(path, json=body)
        assert response.status == 200, await response.text()
        return response


async def test_a_stateless_wait_answers_from_live_events(gateway: Any) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "ice cream"}}
    response = await _call(gateway, "/runs/wait", body)
    assert await response.json() == FINAL


async def test_a_stateless_stream_carries_every_event_live(gateway: Any) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "ice cream"}, "stream_mode": ["values"]}
    response = await _call(gateway, "/runs/stream", body)
    events = parse_sse(await response.read())
    assert [e["event"] for e in events] == ["metadata", "values", "values", "values"]
    assert events[-1]["data"] == FINAL


async def test_a_run_queued_behind_another_on_its_thread_answers_live(gateway: Any) -> None:
    """The second run is stored pending (its thread is busy), claimed when the first ends, and
    its reader, who read the store once while it waited, gets the rest live."""
    thread_id = (await (await gateway.post("/threads", json={})).json())["thread_id"]
    first = await _call(
        gateway,
        f"/threads/{thread_id}/runs",
        {"assistant_id": "slow", "input": {"seconds": 0.5}},
    )
    first_id = (await first.json())["run_id"]
    body = {"assistant_id": "agent", "input": {"topic": "ice cream"}}
    second = await _call(gateway, f"/threads/{thread_id}/runs/wait", body)
    assert await second.json() == FINAL
    joined = await _call(gateway, f"/threads/{thread_id}/runs/{first_id}/join")
    assert await joined.json() == {"seconds": 0.5}
