"""Reading request bodies and parameters, each failure a clear 4xx."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from gateway import errors

T = TypeVar("T")


async def json_object(
    request: web.Request,
    *,
    optional: bool = False,
    malformed: type[errors.GatewayError] = errors.BadRequest,
) -> dict[str, Any]:
    """The body as a JSON object. An empty body is ``{}`` when ``optional``; an empty or
    unparsable one is refused with ``malformed`` (400 here, 422 where the peer API says so)."""
    body = await request.read()
    if not body.strip():
        if optional:
            return {}
        raise malformed("Request body is empty: expected a JSON object")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise malformed("Invalid JSON in request body") from None
    if not isinstance(data, dict):
        raise errors.Unprocessable("Request body must be a JSON object")
    return data


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
    data: dict[str, Any], name: str, allowed: tuple[str, ...] | None = None
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


def delays(data: dict[str, Any], name: str) -> tuple[float, ...] | None:
    """A retry schedule: a non-empty list of non-negative seconds, or null for the default."""
    value = optional(data, name, list)
    if value is None:
        return None
    if not value or not all(
        isinstance(item, int | float) and not isinstance(item, bool) and item >= 0 for item in value
    ):
        raise errors.Unprocessable(f"{name}: expected a non-empty list of seconds (numbers >= 0)")
    return tuple(float(item) for item in value)


def timestamp(data: dict[str, Any], name: str) -> float | None:
    """An RFC 3339 date-time, or epoch seconds."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    raise errors.Unprocessable(f"{name}: expected an RFC 3339 date-time or epoch seconds")
