"""Flows only the tests use."""

from __future__ import annotations

import asyncio
from typing import Any


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
