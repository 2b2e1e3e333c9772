"""Demo flows: one of each kind a flow can be (plain function, async function, async generator)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


def echo(value: Any) -> Any:
    """Answers with its input."""
    return value


async def agent(value: Any) -> AsyncIterator[dict[str, str]]:
    """The two-step joke graph: refine_topic, then generate_joke."""
    topic = value.get("topic", "") if isinstance(value, dict) else str(value)
    state = {"topic": topic + " and cats"}
    yield state
    yield {**state, "joke": "This is a joke about " + state["topic"]}


async def chat(value: Any, context: Any) -> dict[str, str]:
    """Replies to ``input_value``, streaming the reply token by token."""
    text = value.get("input_value", "") if isinstance(value, dict) else str(value)
    reply = f"You said: {text}" if text else "Say something and I will answer."
    for index, word in enumerate(reply.split(" ")):
        await context.token(word if index == 0 else " " + word)
    await context.message(reply)
    return {"message": reply}


def fail(value: Any) -> Any:
    """Always raises: shows how a failed run is reported."""
    raise RuntimeError(f"this flow always fails (input was {value!r})")
