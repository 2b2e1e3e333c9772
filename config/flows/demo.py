"""Demo flows: one of each kind a flow can be (plain function, async function with a context,
a list of named steps)."""

from __future__ import annotations

from typing import Any

from gateway.flows import RunContext


def echo(value: Any) -> Any:
    """Answers with its input."""
    return value


def refine_topic(state: dict[str, Any]) -> dict[str, str]:
    """Adds cats to the topic (from ``topic``, or Langflow's ``input_value``)."""
    topic = state.get("topic") or state.get("input_value") or state.get("input") or ""
    return {"topic": str(topic) + " and cats"}


def generate_joke(
    state: dict[str, Any], *, template: str = "This is a joke about {topic}"
) -> dict[str, str]:
    """Tells the joke; ``template`` is a parameter, so a tweak can change it."""
    return {"joke": template.format(topic=state["topic"])}


agent = [refine_topic, generate_joke]
"""The two-step joke graph: refine_topic, then generate_joke. Each step returns its partial
update; the run's output is the merged state, e.g. for ``{"topic": "ice cream"}``:
``{"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}``."""


async def chat(value: Any, context: RunContext) -> dict[str, str]:
    """Replies to ``input_value``, streaming the reply token by token.

    A flow that takes a second argument gets the run's ``RunContext``: ``await
    context.token(chunk)`` streams a piece of the reply (Langflow ``token`` events, LangGraph
    ``messages``), ``await context.message(text)`` sends a whole message (Langflow
    ``add_message``; after tokens it completes them), ``await context.custom(data)`` sends
    anything JSON (LangGraph ``custom``).
    """
    text = value.get("input_value", "") if isinstance(value, dict) else str(value)
    reply = f"You said: {text}" if text else "Say something and I will answer."
    for index, word in enumerate(reply.split(" ")):
        await context.token(word if index == 0 else " " + word)
    await context.message(reply)
    return {"message": reply}


def fail(value: Any) -> Any:
    """Always raises: shows how a failed run is reported."""
    raise RuntimeError(f"this flow always fails (input was {value!r})")
