"""Errors as ``{"detail": …}`` JSON (never a stack trace), and the API key check."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway import errors, keys
from gateway.api import langflow

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz"})


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.GatewayError as exc:
        if exc.status >= 500:
            log.error("request_failed", path=request.path, detail=exc.detail)
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.settings_key].max_body_bytes
        detail = f"Request body too large: the limit is {limit} bytes"
        return web.json_response({"detail": detail}, status=413)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"detail": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        log.exception("request_failed", path=request.path)
        return web.json_response({"detail": "Internal server error"}, status=500)


@web.middleware
async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """When ``api_key`` is set, every API call needs it in ``x-api-key`` (header or query), as in Langflow."""
    expected = request.app[keys.settings_key].api_key
    if (
        expected
        and request.path not in PUBLIC_PATHS
        and not carries_trigger_token(request)
        and not served_by_inspect(request)
    ):
        given = request.headers.get("x-api-key") or request.query.get("x-api-key")
        if not given:
            raise errors.Forbidden("An API key must be passed as query or header")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise errors.Forbidden("Invalid API key")
    return await handler(request)


def carries_trigger_token(request: web.Request) -> bool:
    """The one exemption from the API key: a webhook route called with a signed trigger URL
    (``?token=`` from ``hookgate token``). The webhook handler then requires that token to be
    valid for its flow, so the token replaces the key rather than bypassing it."""
    return (
        langflow.TRIGGER_TOKEN_PARAM in request.query
        and request.match_info.http_exception is None
        and request.match_info.handler is langflow.webhook
    )


def served_by_inspect(request: web.Request) -> bool:
    """The second exemption: the ``/inspect`` pages check the API key themselves, through a
    login form and a signed session cookie (a browser cannot send ``x-api-key`` on a page
    load), and CSRF-check every action; see ``gateway.inspect.access``."""
    route = request.match_info.route
    return (
        request.match_info.http_exception is None
        and route.resource is not None
        and (route.resource.canonical + "/").startswith("/inspect/")
    )
