"""Who may use ``/inspect``, and proof that a form was sent by the page itself.

- Bound to loopback with no API key: open, as the rest of the local gateway is.
- ``api_key`` set: a login form asks for it once and sets a signed session cookie
  (itsdangerous, keyed by the API key, so changing the key ends every session) naming a
  session the store holds (by a hash of its id), so every process of the install honours it
  and logging out ends it for good. Failed logins are throttled per client address, in
  each process. Scripts may send ``x-api-key`` instead; a
  browser cannot add that header to a page load, which is why the API-key middleware leaves
  ``/inspect`` to this module (``middleware.served_by_inspect``).
- Bound elsewhere with no API key: refused, since the pages can act on the gateway.

Every state-changing request (POST) must carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``); the app-wide rules of ``gateway.crosssite`` have
already refused a foreign ``Host`` or ``Origin``: a page on another site cannot press
hookgate's buttons, even on localhost. Bin capture URLs are public by design (they are
receivers), and so are the static files.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

import itsdangerous
from aiohttp import web
from yarl import URL

from gateway import keys
from gateway.crosssite import SAFE_METHODS, is_loopback
from gateway.store import base

SESSION_COOKIE = "hookgate_inspect"
SESSION_SALT = "hookgate.inspect.session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
API_KEY = "x-api-key"
HOME = "/inspect"
LOGIN_FAILURES_ALLOWED = 5
LOGIN_FAILURE_WINDOW = 60.0
MAX_TRACKED = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Session:
    csrf: str
    session_id: str = ""  # set once logged in; names a session the store holds


class LoginThrottle:
    """Failed logins per client address: after ``LOGIN_FAILURES_ALLOWED`` within
    ``LOGIN_FAILURE_WINDOW`` seconds, that address waits until the oldest one ages out."""

    def __init__(self) -> None:
        self._failures: dict[str, collections.deque[float]] = {}

    def wait(self, address: str, now: float) -> int:
        """Whole seconds before ``address`` may try again (0: now)."""
        failures = self._failures.get(address)
        if failures is None or len(failures) < LOGIN_FAILURES_ALLOWED:
            return 0
        return max(0, math.ceil(failures[0] + LOGIN_FAILURE_WINDOW - now))

    def failed(self, address: str, now: float) -> None:
        if address not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._failures = {
                peer: times
                for peer, times in self._failures.items()
                if times[-1] + LOGIN_FAILURE_WINDOW > now
            }
            while len(self._failures) >= MAX_TRACKED:
                del self._failures[next(iter(self._failures))]
        failures = self._failures.setdefault(address, collections.deque())
        failures.append(now)
        while failures[0] + LOGIN_FAILURE_WINDOW <= now:
            failures.popleft()
        while len(failures) > LOGIN_FAILURES_ALLOWED:
            failures.popleft()

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def _now(request: web.Request) -> float:
    return request.config_dict[keys.clock_key].now()


def _serializer(request: web.Request) -> itsdangerous.URLSafeTimedSerializer:
    settings = request.config_dict[keys.settings_key]
    secret = settings.api_key or request.config_dict[keys.inspect_session_secret_key]
    return itsdangerous.URLSafeTimedSerializer(secret, salt=SESSION_SALT)


def _sessions(request: web.Request) -> base.InspectStore:
    return cast(base.InspectStore, request.config_dict[keys.store_key])


def _session_hash(session_id: str) -> str:
    """What the store keeps of a session id: a hash, so reading the database opens no session."""
    return hashlib.sha256(session_id.encode()).hexdigest()


async def read_session(request: web.Request) -> Session | None:
    """The session the cookie names; None when it is missing, forged, expired or logged out."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer(request).loads(cookie, max_age=SESSION_MAX_AGE)
    except itsdangerous.BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    session_id = data.get("sid")
    if not isinstance(session_id, str):
        return None
    if session_id and not await _sessions(request).session_is_open(
        _session_hash(session_id), _now(request)
    ):
        return None
    return Session(csrf=data["csrf"], session_id=session_id)


def set_session(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    value = _serializer(request).dumps({"csrf": session.csrf, "sid": session.session_id})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        path=HOME,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def new_session() -> Session:
    return Session(csrf=secrets.token_urlsafe(24))


def api_key_matches(request: web.Request, given: str) -> bool:
    expected: str = request.config_dict[keys.settings_key].api_key
    return bool(expected) and hmac.compare_digest(
        given.encode(errors="surrogateescape"), expected.encode()
    )


def session_of(request: web.Request) -> Session:
    return request[keys.inspect_session_key]


def login_wait(request: web.Request) -> int:
    """Seconds this client must wait before its next login attempt is even checked."""
    return request.config_dict[keys.inspect_login_throttle_key].wait(
        request.remote or "", _now(request)
    )


def login_failed(request: web.Request) -> None:
    request.config_dict[keys.inspect_login_throttle_key].failed(request.remote or "", _now(request))


async def log_in(request: web.Request, response: web.StreamResponse) -> None:
    """Start a logged-in session with a fresh CSRF token (nothing of the anonymous one is
    kept) and hand it to the browser in ``response``."""
    request.config_dict[keys.inspect_login_throttle_key].succeeded(request.remote or "")
    session_id = secrets.token_urlsafe(24)
    now = _now(request)
    await _sessions(request).open_session(_session_hash(session_id), now + SESSION_MAX_AGE, now)
    set_session(request, response, dataclasses.replace(new_session(), session_id=session_id))


async def log_out(request: web.Request, response: web.StreamResponse) -> None:
    """End this session server-side, so its cookie is refused even if replayed."""
    session_id = session_of(request).session_id
    if session_id:
        await _sessions(request).close_session(_session_hash(session_id))
    response.del_cookie(SESSION_COOKIE, path=HOME)


def local_next(value: str | None) -> str:
    """Where to go after logging in: a path under /inspect on this gateway (anything else is
    the overview), never carrying an API key along."""
    if not value or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return HOME
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or not (parts.path == HOME or parts.path.startswith(HOME + "/"))
    ):
        return HOME
    if "//" in parts.path:
        return HOME
    return str(_without_api_key(URL(value)))


def _without_api_key(url: URL) -> URL:
    kept = [(name, value) for name, value in url.query.items() if name.lower() != API_KEY]
    return url.with_query(kept)


def check_csrf(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest((given or "").encode(), session.csrf.encode())


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
    session = await read_session(request)
    fresh = session is None
    if session is None:
        session = new_session()
    header_key = request.headers.get(API_KEY)
    by_header = header_key is not None and api_key_matches(request, header_key)
    authenticated = not settings.api_key or bool(session.session_id) or by_header
    request[keys.inspect_session_key] = session
    if not authenticated and route != "inspect:login":
        if request.method in SAFE_METHODS and route != "inspect:live":
            back_to = _without_api_key(request.rel_url)
            location = request.app.router["inspect:login"].url_for().with_query(next=str(back_to))
            redirect = web.Response(status=303, headers={"Location": str(location)})
            if fresh:
                set_session(request, redirect, session)
            return redirect
        raise web.HTTPUnauthorized(text="log in at /inspect/login first")
    # A script sending x-api-key needs no token: another site's page cannot set that header.
    if request.method not in SAFE_METHODS and not by_header:
        form = await request.post() if request.content_type in _FORMS else {}
        token = form.get(CSRF_FIELD)
        given = request.headers.get(CSRF_HEADER) or (token if isinstance(token, str) else None)
        if not check_csrf(session, given):
            raise web.HTTPForbidden(
                text="This form is stale or came from another site (CSRF check failed): "
                "reload the page and try again."
            )
    response = await handler(request)
    if fresh:
        set_session(request, response, session)
    return response


_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
