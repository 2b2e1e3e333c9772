"""Who may use ``/inspect``, and proof that a form was sent by the page itself.

- Bound to loopback with no API key: open, as the rest of the local gateway is.
- ``api_key`` set: a login form asks for it once and sets a signed session cookie
  (itsdangerous, keyed by the API key, so changing the key ends every session); scripts may
  send ``x-api-key`` instead. A browser cannot add that header to a page load, which is why
  the API-key middleware leaves ``/inspect`` to this module (``middleware.served_by_inspect``).
- Bound elsewhere with no API key: refused, since the pages can act on the gateway.

Every state-changing request (POST) must carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends one, a same-origin
``Origin``: a page on another site cannot press hookgate's buttons, even on localhost.
Bin capture URLs are public by design (they are receivers), and so are the static files.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import itsdangerous
from aiohttp import web

from gateway import keys

SESSION_COOKIE = "hookgate_inspect"
SESSION_SALT = "hookgate.inspect.session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_ROUTES = frozenset({"inspect:capture", "inspect:static", "inspect:login"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
session_key = web.AppKey("inspect_session_secret", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Session:
    csrf: str
    authenticated: bool


session_request_key = web.RequestKey("inspect_session", Session)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serializer(request: web.Request) -> itsdangerous.URLSafeTimedSerializer:
    settings = request.config_dict[keys.settings_key]
    secret = settings.api_key or request.config_dict[session_key]
    return itsdangerous.URLSafeTimedSerializer(secret, salt=SESSION_SALT)


def read_session(request: web.Request) -> Session | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer(request).loads(cookie, max_age=SESSION_MAX_AGE)
    except itsdangerous.BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return Session(csrf=data["csrf"], authenticated=bool(data.get("auth")))


def set_session(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    value = _serializer(request).dumps({"csrf": session.csrf, "auth": session.authenticated})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        path="/inspect",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def new_session(authenticated: bool) -> Session:
    return Session(csrf=secrets.token_urlsafe(24), authenticated=authenticated)


def api_key_matches(request: web.Request, given: str) -> bool:
    expected: str = request.config_dict[keys.settings_key].api_key
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def session_of(request: web.Request) -> Session:
    return request[session_request_key]


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def check_csrf(request: web.Request, session: Session, form_token: str | None) -> bool:
    given = request.headers.get(CSRF_HEADER) or form_token or ""
    return (
        _same_origin(request)
        and bool(given)
        and hmac.compare_digest(given.encode(), session.csrf.encode())
    )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the page (or send to the login form), and check CSRF on every POST."""
    route = request.match_info.route.name if request.match_info.http_exception is None else None
    if route in {"inspect:capture", "inspect:static"}:
        return await handler(request)
    settings = request.config_dict[keys.settings_key]
    if not settings.api_key and not is_loopback(settings.host):
        raise web.HTTPForbidden(
            text="/inspect is served without a login only on a loopback address: "
            "set GATEWAY_API_KEY to use it on " + settings.host,
        )
    session = read_session(request)
    fresh = session is None
    if session is None:
        session = new_session(authenticated=not settings.api_key)
    header_key = request.headers.get("x-api-key")
    by_header = header_key is not None and api_key_matches(request, header_key)
    authenticated = not settings.api_key or session.authenticated or by_header
    request[session_request_key] = session
    if not authenticated and route != "inspect:login":
        if request.method in SAFE_METHODS and route != "inspect:live":
            location = (
                request.app.router["inspect:login"].url_for().with_query(next=request.path_qs)
            )
            redirect = web.Response(status=303, headers={"Location": str(location)})
            if fresh:
                set_session(request, redirect, session)
            return redirect
        raise web.HTTPUnauthorized(text="log in at /inspect/login first")
    # A script sending x-api-key needs no token: another site's page cannot set that header.
    if request.method not in SAFE_METHODS and not by_header:
        form = await request.post() if request.content_type in _FORMS else {}
        token = form.get(CSRF_FIELD)
        if not check_csrf(request, session, token if isinstance(token, str) else None):
            raise web.HTTPForbidden(
                text="This form is stale or came from another site (CSRF check failed): "
                "reload the page and try again."
            )
    response = await handler(request)
    if fresh:
        set_session(request, response, session)
    return response


_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
