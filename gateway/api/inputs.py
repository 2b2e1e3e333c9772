"""The hand-written readers ``endpoints``, ``langflow`` and ``relaying`` still use, each
failure a clear 4xx naming what is wrong. The other handlers read their input through the
models of ``gateway.api.schema``, which also make ``/openapi.json``; these go the same way as
those three modules move to their models. The bounds are the models' (``schema``), so both
refuse the same values.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from gateway import errors
from gateway.api import schema
from gateway.api.schema import LATEST_TIMESTAMP, MAX_DELAY_SECONDS, MAX_LIMIT, MAX_OFFSET
from gateway.api.schema import LATEST_TIMESTAMP_MS as LATEST_TIMESTAMP_MS  # langflow's

T = TypeVar("T")
_QUERY_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")


async def json_object(
    request: web.Request,
    *,
    optional: bool = False,
    malformed: type[errors.GatewayError] = errors.BadRequest,
) -> dict[str, Any]:
    """The body as a JSON object. An empty body is ``{}`` when ``optional``; an empty or
    unparsable one is refused with ``malformed`` (400 here, 422 where the peer API says so)."""
    return await schema.json_object(request, required=not optional, malformed=malformed)


def optional(data: Mapping[str, Any], name: str, kind: type[T] | tuple[type, ...]) -> T | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise errors.Unprocessable(f"{name}: expected {expected}, got {type(value).__name__}")
    return value  # type: ignore[return-value]


def choice(data: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = optional(data, name, str)
    if value is None:
        return default
    if value not in allowed:
        raise errors.Unprocessable(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def string_list(
    data: Mapping[str, Any], name: str, allowed: tuple[str, ...] | None = None
) -> tuple[str, ...] | None:
    value = optional(data, name, list)
    if value is None:
        return None
    if not all(isinstance(item, str) for item in value):
        raise errors.Unprocessable(f"{name}: expected a list of strings")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise errors.Unprocessable(
                f"{name}: unknown value(s) {', '.join(unknown)}; expected any of {', '.join(allowed)}"
            )
    return tuple(dict.fromkeys(value))


def uuid_param(request: web.Request, name: str, label: str) -> str:
    value = request.match_info[name]
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.Unprocessable(f"Invalid {label}: must be a UUID") from None


# numbers: durations, moments, pages


def bounded(value: Any, name: str, minimum: float, maximum: float, unit: str = "") -> float:
    """A finite JSON number (not a boolean) within ``minimum``..``maximum``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise errors.Unprocessable(f"{name}: expected a number, got {type(value).__name__}")
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise errors.Unprocessable(f"{name}: expected {_plain(minimum)} to {_plain(maximum)}{unit}")
    return float(value)


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def delays(data: Mapping[str, Any], name: str) -> tuple[float, ...] | None:
    """A retry schedule: a non-empty list of seconds, or null for the default."""
    value = optional(data, name, list)
    if value is None:
        return None
    if not value:
        raise errors.Unprocessable(f"{name}: expected a non-empty list of seconds")
    return tuple(
        bounded(item, f"{name}[{index}]", 0, MAX_DELAY_SECONDS, " seconds")
        for index, item in enumerate(value)
    )


def timestamp(data: Mapping[str, Any], name: str) -> float | None:
    """An RFC 3339 date-time, or epoch seconds, between 1970 and the year 9999."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = moment.timestamp()
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise errors.Unprocessable(f"{name}: expected an RFC 3339 date-time or epoch seconds")
    if not (math.isfinite(value) and 0 <= value <= LATEST_TIMESTAMP):
        raise errors.Unprocessable(f"{name}: expected a moment between 1970 and the year 9999")
    return float(value)


def integer(data: Mapping[str, Any], name: str, default: int, minimum: int, maximum: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise errors.Unprocessable(f"{name}: expected an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise errors.Unprocessable(f"{name}: expected {minimum} to {maximum}, got {value}")
    return value


def page(data: Mapping[str, Any], *, default_limit: int = 10) -> tuple[int, int]:
    """``limit`` (1..1000) and ``offset`` of a list route, from a body or ``query_integers``."""
    limit = integer(data, "limit", default_limit, 1, MAX_LIMIT)
    offset = integer(data, "offset", 0, 0, MAX_OFFSET)
    return limit, offset


def query_integers(query: Mapping[str, str], *names: str) -> dict[str, int]:
    """The integer query parameters among ``names`` that are present, for ``page`` and the
    like to bound; a value that is not a plain decimal integer is refused."""
    found = {}
    for name in names:
        text = query.get(name)
        if text is None or text == "":
            continue
        if _QUERY_INTEGER.fullmatch(text.strip()) is None:
            raise errors.Unprocessable(f"{name}: expected an integer, got {text[:40]!r}")
        found[name] = int(text)
    return found
