"""A compiled LangGraph ``StateGraph`` as a flow: LangGraph's own stream modes, its own
checkpointer keeping thread state across runs, driven through the SDK like any other graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest

from tests import needs

needs.module("langgraph", "pip install -e '.[langgraph]'")

from langgraph.config import get_stream_writer  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph_sdk.client import LangGraphClient  # noqa: E402

from gateway.settings import FlowSettings, Settings  # noqa: E402


class JokeState(TypedDict, total=False):
    topic: str
    joke: str


def refine_topic(state: JokeState) -> JokeState:
    get_stream_writer()({"progress": "refining"})
    return {"topic": state["topic"] + " and cats"}


def generate_joke(state: JokeState) -> JokeState:
    return {"joke": f"This is a joke about {state['topic']}"}


graph = (
    StateGraph(JokeState)
    .add_node(refine_topic)
    .add_node(generate_joke)
    .add_edge(START, "refine_topic")
    .add_edge("refine_topic", "generate_joke")
    .add_edge("generate_joke", END)
    .compile()
)


class CountState(TypedDict):
    count: Annotated[int, operator.add]


def bump(state: CountState) -> CountState:
    return {"count": 1}


counter = StateGraph(CountState).add_node(bump).add_edge(START, "bump").compile()


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    shipped: Settings = make_settings()
    here = "tests.integration.test_langgraph_graphs"
    return shipped.replace(
        flows={
            **shipped.flows,
            "lg_agent": FlowSettings(target=f"{here}:graph"),
            "lg_counter": FlowSettings(target=f"{here}:counter"),
        }
    )


async def test_compiled_graph_streams_langgraph_modes(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            thread_id,
            "lg_agent",
            input={"topic": "ice cream"},
            stream_mode=["updates", "values", "custom"],
        )
    ]
    assert [e for e, _ in parts] == [
        "metadata",
        "values",
        "custom",
        "updates",
        "values",
        "updates",
        "values",
    ]
    assert parts[2][1] == {"progress": "refining"}
    assert parts[3][1] == {"refine_topic": {"topic": "ice cream and cats"}}
    assert parts[-1][1] == {
        "topic": "ice cream and cats",
        "joke": "This is a joke about ice cream and cats",
    }
    graph_json = await client.assistants.get_graph("lg_agent")
    assert {"refine_topic", "generate_joke"} <= {n["id"] for n in graph_json["nodes"]}


async def test_thread_state_is_kept_by_langgraphs_checkpointer(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    assert await client.runs.wait(thread_id, "lg_counter", input={"count": 1}) == {"count": 2}
    assert await client.runs.wait(thread_id, "lg_counter", input={"count": 0}) == {"count": 3}
    other = (await client.threads.create())["thread_id"]
    assert await client.runs.wait(other, "lg_counter", input={"count": 0}) == {"count": 1}
