"""structlog set-up: JSON lines when not on a terminal, console in development; secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from aiohttp import web

from gateway import models

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
    }
)
SECRET_KEYS = frozenset({"secret", "api_key", "signing_secret", "password", "token", "x-api-key"})


def mask(value: str) -> str:
    """Keep enough to recognise a secret, never enough to use it."""
    if len(value) <= 8:
        return "****"
    return value[:6] + "…" + value[-2:] if value.startswith("whsec_") else "****" + value[-2:]


def masked_headers(headers: Any) -> dict[str, str]:
    return {
        name: (mask(value) if name.lower() in SECRET_HEADERS else value)
        for name, value in headers.items()
    }


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in SECRET_KEYS & event.keys():
        if isinstance(event[key], str) and event[key]:
            event[key] = mask(event[key])
    return event


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.dict_tracebacks
            if as_json
            else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of this request, and hand it back to the caller."""
    structlog.contextvars.clear_contextvars()
    request_id = request.headers.get("x-request-id") or models.new_id()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers.setdefault("x-request-id", request_id)
    return response
