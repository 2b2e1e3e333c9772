"""A compiled LangGraph ``StateGraph`` as a flow: LangGraph's own stream modes, its own
checkpointer keeping thread state across runs, driven through the SDK like any other graph:
interrupts resumed by a command, a chat model's tokens, subgraphs' namespaced events."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
import typing_extensions

from tests import needs

needs.module("langgraph", "pip install -e '.[langgraph]'")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AnyMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.config import get_stream_writer  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import interrupt  # noqa: E402
from langgraph_sdk.client import LangGraphClient  # noqa: E402

from gateway import models  # noqa: E402
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


class Approval(typing_extensions.TypedDict, total=False):  # pydantic draws its schema
    request: str
    answer: str


def ask(state: Approval) -> Approval:
    return {"answer": interrupt({"question": f"approve {state['request']}?"})}


# Compiled with a checkpointer of its own, which the gateway then uses instead of its own.
approval = StateGraph(Approval).add_node(ask).add_edge(START, "ask").compile(InMemorySaver())


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def reply(state: Chat) -> Chat:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there friend")]))
    return {"messages": [await model.ainvoke(state["messages"])]}


def sign_off(state: Chat) -> Chat:
    return {"messages": [AIMessage(content="bye")]}


chat = (
    StateGraph(Chat)
    .add_node(reply)
    .add_node(sign_off)
    .add_edge(START, "reply")
    .add_edge("reply", "sign_off")
    .compile()
)


def shout(state: JokeState) -> JokeState:
    return {"topic": state["topic"].upper()}


inner = StateGraph(JokeState).add_node(shout).add_edge(START, "shout").compile()
outer = StateGraph(JokeState).add_node("inner", inner).add_edge(START, "inner").compile()


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    shipped: Settings = make_settings()
    here = "tests.integration.test_langgraph_graphs"
    return shipped.replace(
        flows={
            **shipped.flows,
            "lg_agent": FlowSettings(target=f"{here}:graph"),
            "lg_counter": FlowSettings(target=f"{here}:counter"),
            "lg_approval": FlowSettings(target=f"{here}:approval"),
            "lg_chat": FlowSettings(target=f"{here}:chat"),
            "lg_outer": FlowSettings(target=f"{here}:outer"),
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


async def test_an_interrupted_graph_asks_and_a_command_resumes_it(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    asked = await client.runs.wait(thread_id, "lg_approval", input={"request": "refund"})
    [question] = asked["__interrupt__"]
    assert question["value"] == {"question": "approve refund?"}
    resumed = await client.runs.wait(thread_id, "lg_approval", command={"resume": "yes"})
    assert resumed == {"request": "refund", "answer": "yes"}


async def test_a_chat_models_tokens_and_a_nodes_message_are_streamed(
    client: LangGraphClient,
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            thread_id,
            "lg_chat",
            input={"messages": [{"role": "user", "content": "hi"}]},
            stream_mode=["messages-tuple", "values"],
        )
    ]
    pieces = [data[0] for event, data in parts if event == "messages"]
    tokens = [p["content"] for p in pieces if p["type"] == "AIMessageChunk"]
    assert "".join(tokens) == "hello there friend"
    assert len(tokens) > 1, "streamed token by token"
    assert [p["content"] for p in pieces if p["type"] == "ai"] == ["bye"]
    final = [data for event, data in parts if event == "values"][-1]
    assert [(m["type"], m["content"]) for m in final["messages"]] == [
        ("human", "hi"),
        ("ai", "hello there friend"),
        ("ai", "bye"),
    ]


async def test_a_subgraphs_events_carry_its_namespace(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]

    async def events(subgraphs: bool) -> list[tuple[str, Any]]:
        return [
            (p.event, p.data)
            async for p in client.runs.stream(
                thread_id,
                "lg_outer",
                input={"topic": "x"},
                stream_mode=["updates"],
                stream_subgraphs=subgraphs,
            )
        ]

    parts = await events(True)
    inside = [(e, d) for e, d in parts if e.startswith("updates|inner:")]
    assert [d for _, d in inside] == [{"shout": {"topic": "X"}}]
    assert ("updates", {"inner": {"topic": "X"}}) in parts
    assert not any("|" in e for e, _ in await events(False))


async def test_a_graphs_schemas_are_its_own(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(models.assistant_id("lg_approval"))
    assert schemas["graph_id"] == "lg_approval"
    assert set(schemas["input_schema"]["$defs"]["Approval"]["properties"]) == {"request", "answer"}
