"""JSON from outside, read strictly: only what every JSON reader accepts and what the gateway
can store, render and sign again. Python's ``json`` takes ``NaN``, ``Infinity`` and ``1e999``
(an infinite float), which it would later write back as invalid JSON, and recurses once per
nesting level, so a deeply nested text would fail far from where it came in."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 128
"""Nesting levels accepted: far beyond real payloads, and far below Python's recursion limit,
so everything that walks a value later (encoders, templates, copies) has room to spare."""


class InvalidJSON(ValueError):
    """Why a text is not JSON the gateway takes; the message is fit for a client."""


def loads(text: str | bytes) -> Any:
    """The value of a JSON text, or ``InvalidJSON`` saying what is wrong with it."""
    try:
        value = json.loads(text, parse_constant=_non_finite, parse_float=_finite_float)
    except InvalidJSON:
        raise
    except RecursionError:
        raise InvalidJSON(_too_deep()) from None
    except UnicodeDecodeError:
        raise InvalidJSON("not UTF-8 text") from None
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from None
    if depth(value) > MAX_DEPTH:
        raise InvalidJSON(_too_deep())
    return value


def depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests (a scalar is 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        if level > MAX_DEPTH:
            return level
        deepest = max(deepest, level)
        pending.extend((child, level) for child in children)
    return deepest


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels"


def _non_finite(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number; numbers must be finite")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidJSON(f"{text} is out of range; numbers must be finite")
    return number
