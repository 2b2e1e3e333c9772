"""Errors as ``{"detail": …}`` JSON (never a stack trace), the API key check, and the
cross-site rules of ``gateway.crosssite`` applied to every request, API and ``/inspect`` alike."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import hdrs, web

from gateway import crosssite, errors, keys
from gateway.api import langflow, openapi, problems

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz", *openapi.PUBLIC_PATHS})
API_KEY = "x-api-key"


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.GatewayError as exc:
        status = problems.status_of(exc)
        if status >= 500:
            log.error("request_failed", path=request.path, detail=exc.detail)
        return web.json_response(
            {"detail": exc.detail}, status=status, headers=problems.headers_of(exc)
        )
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
async def refuse_foreign_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve only the host names this gateway answers to (``crosssite.host_allowed``), so a
    page whose name was rebound to 127.0.0.1 can read neither the API nor ``/inspect``."""
    settings = request.app[keys.settings_key]
    host = request.headers.get(hdrs.HOST)
    if host is not None and not crosssite.host_allowed(host, settings.host, settings.allowed_hosts):
        log.info("request_refused", reason="host not allowed", host=host[:100])
        raise problems.MisdirectedRequest(
            f"This gateway does not answer to the host {host[:100]!r}: add the name to "
            "allowed_hosts (GATEWAY_ALLOWED_HOSTS) to reach it that way"
        )
    return await handler(request)


@web.middleware
async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """When ``api_key`` is set, every API call needs it in ``x-api-key`` (header or query), as in Langflow."""
    if (
        request.app[keys.settings_key].api_key
        and request.path not in PUBLIC_PATHS
        and not carries_trigger_token(request)
        and not served_by_inspect(request)
    ):
        if not (request.headers.get(API_KEY) or request.query.get(API_KEY)):
            raise errors.Forbidden("An API key must be passed as query or header")
        if not api_key_valid(request):
            raise errors.Forbidden("Invalid API key")
    return await handler(request)


@web.middleware
async def refuse_cross_site_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No state change from another site's page: a write a browser marks as cross-site is
    refused everywhere but at the receivers (``open_to_other_sites``), and a JSON API write
    must declare JSON or carry ``x-api-key``, which a page cannot send without asking first.
    ``/inspect`` takes forms, behind its own CSRF token; webhooks take any body, as senders
    like GitHub post forms."""
    if request.method in crosssite.SAFE_METHODS or request.match_info.http_exception is not None:
        return await handler(request)
    if crosssite.cross_site(request) and not open_to_other_sites(request):
        origin = request.headers.get(hdrs.ORIGIN, "") or request.headers.get("Sec-Fetch-Site", "")
        log.info("request_refused", reason="cross-site write", origin=origin[:100])
        raise errors.Forbidden(
            f"Cross-site request refused: it comes from a page of another origin ({origin[:100]}),"
            f" not from {request.host}; another site cannot change anything here"
        )
    if (
        not served_by_inspect(request)
        and not is_webhook(request)
        and API_KEY not in request.headers
        and not crosssite.declares_json(request)
    ):
        given = request.headers.get(hdrs.CONTENT_TYPE, "no Content-Type")
        raise problems.UnsupportedMediaType(
            f"Send the body as JSON with Content-Type: application/json (got {given[:100]})"
        )
    return await handler(request)


def api_key_valid(request: web.Request) -> bool:
    """Whether the request carries the configured API key (header or query)."""
    expected: str = request.app[keys.settings_key].api_key
    given = request.headers.get(API_KEY) or request.query.get(API_KEY) or ""
    return bool(expected and given) and hmac.compare_digest(
        given.encode(errors="surrogateescape"), expected.encode()
    )


def is_webhook(request: web.Request) -> bool:
    return (
        request.match_info.http_exception is None and request.match_info.handler is langflow.webhook
    )


def carries_trigger_token(request: web.Request) -> bool:
    """The one exemption from the API key: a webhook route called with a signed trigger URL
    (``?token=`` from ``hookgate token``). The webhook handler then requires that token to be
    valid for its flow, so the token replaces the key rather than bypassing it."""
    return langflow.TRIGGER_TOKEN_PARAM in request.query and is_webhook(request)


def open_to_other_sites(request: web.Request) -> bool:
    """The receivers a page on another site may post to: a bin (it records whatever reaches
    it), and a webhook that proves its sender with the API key or a signed trigger URL (which
    the handler then checks). An anonymous webhook on a keyless gateway is not one of them."""
    if request.match_info.route.name == "inspect:capture":
        return True
    return is_webhook(request) and (carries_trigger_token(request) or api_key_valid(request))


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
