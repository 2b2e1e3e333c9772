"""Flows only the tests use."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.flows import RunContext


async def ticks(value: Any, context: RunContext) -> Any:
    """Sends ``value["count"]`` custom events ``{"tick": n}``, ``value["every"]`` seconds apart."""
    for tick in range(int(value.get("count", 5))):
        await asyncio.sleep(float(value.get("every", 0.2)))
        await context.custom({"tick": tick})
    return value


async def slow(value: Any) -> Any:
    """Sleeps for ``value["seconds"]`` and answers with its input."""
    await asyncio.sleep(float(value.get("seconds", 5)))
    return value


def not_json(value: Any) -> Any:
    """Returns something that cannot be stored as JSON."""
    return {"when": object()}


def not_finite(value: Any) -> Any:
    """Returns a number JSON cannot carry (``NaN``)."""
    return {"ratio": float("nan")}
