"""The run event log: stored in order, followed live, joined late, resumed after an id."""

from __future__ import annotations

from typing import Any

from gateway import keys
from gateway.runs.events import RUN_END
from tests.integration.helpers import finished_run


async def collect(gateway: Any, run_id: str, after_id: int = 0) -> list[Any]:
    hub = gateway.app[keys.runs_key].events
    return [event async for event in hub.follow(run_id, after_id)]


async def test_chat_streams_tokens_then_ends(gateway: Any) -> None:
    response = await gateway.post("/api/v1/webhook/chat", json={"input_value": "hi there"})
    run_id = (await response.json())["run_id"]
    events = await collect(gateway, run_id)
    names = [e.event for e in events]
    assert names[-1] == RUN_END
    assert names.count("token") == 4, "You / said: / hi / there"
    assert "".join(e.data["chunk"] for e in events if e.event == "token") == "You said: hi there"
    assert events[-1].data["status"] == "success"
    assert [e.id for e in events] == sorted(e.id for e in events)


async def test_a_late_reader_and_a_resumed_reader_see_exactly_the_rest(gateway: Any) -> None:
    response = await gateway.post("/api/v1/webhook/agent", json={"topic": "dogs"})
    run_id = (await response.json())["run_id"]
    await finished_run(gateway, run_id)
    everything = await collect(gateway, run_id)
    names = [e.event for e in everything]
    assert names[0] == "values"
    assert names[-1] == RUN_END
    assert names.count("updates") == 2, "one per step: refine_topic, generate_joke"
    assert everything[-1].data["output"] == {
        "topic": "dogs and cats",
        "joke": "This is a joke about dogs and cats",
    }
    rest = await collect(gateway, run_id, after_id=everything[0].id)
    assert [e.id for e in rest] == [e.id for e in everything[1:]]
