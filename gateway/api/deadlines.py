"""Slow clients: a request's body must arrive within ``body_read_timeout`` of its headers.

aiohttp bounds neither half of a request: a client that sends a body a byte a minute, or never
finishes it, would hold a socket and a handler for as long as it likes. The headers' deadline is
the server's keep-alive timer, set where ``hookgate serve`` starts it (``gateway.cli.serve``); this is
the body's. It watches the body arrive without reading it, so every handler keeps reading it its
own way (raw, JSON, forms, multipart).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import StreamReader, web

from gateway import keys
from gateway.api.middleware import Handler

log = structlog.get_logger(__name__)


class BodyTimedOut(TimeoutError):
    """Raised in whatever reads the body once its deadline passed; aiohttp's own lingering read
    of an unfinished body also takes it as a timeout and closes the connection."""


@web.middleware
async def body_read_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    body = request.content
    if body.is_eof():
        return await handler(request)
    timeout = request.config_dict[keys.settings_key].body_read_timeout
    expired = BodyTimedOut(f"Request body not received within {timeout:g} s")
    timer = asyncio.get_running_loop().call_later(timeout, _expire, body, expired)
    try:
        return await handler(request)
    except BodyTimedOut as exc:
        if exc is not expired:
            raise
        log.info("request_body_timeout", path=request.path, timeout=timeout)
        response = web.json_response({"detail": str(exc)}, status=408)
        response.force_close()
        return response
    finally:
        timer.cancel()


def _expire(body: StreamReader, expired: BodyTimedOut) -> None:
    if not body.is_eof():
        body.set_exception(expired)
