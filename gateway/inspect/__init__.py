"""``/inspect``: the local inspection pages, bins and their live feed, as a sub-application.

``setup(app)`` mounts it; the app republishes the store's change feed to the pages' live
feed (``feed.republish``). Pages are server-rendered (aiohttp-jinja2) with one
small script for live updates, relative times and copy buttons; there is no build step.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from gateway import errors, keys, log, models
from gateway.api import problems
from gateway.inspect import access, bins, feed, present
from gateway.inspect.pages import activity, bin_pages, login, outbox

logger = structlog.get_logger(__name__)
HERE = Path(__file__).parent
PREFIX = "/inspect"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class DefaultBin:
    """The bin made at start-up when none exists, printed by ``hookgate serve``."""

    bin_id: str | None = None


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def setup(app: web.Application) -> None:
    """Mount ``/inspect`` on ``app`` and feed its live updates from ``app``'s store."""
    notifier = feed.Notifier()
    app[keys.inspect_notifier_key] = notifier
    app[keys.inspect_default_bin_key] = DefaultBin()
    # Cookies signed in one process must read in the others serving the same install
    # (``serve --workers``), so the key is the install's signing secret when there is one.
    app[keys.inspect_session_secret_key] = app[
        keys.settings_key
    ].signing_secret or secrets.token_urlsafe(32)
    app[keys.inspect_login_throttle_key] = access.LoginThrottle()
    app.cleanup_ctx.append(_default_bin_ctx)
    app.on_shutdown.append(_end_streams)
    app.router.add_get(PREFIX, _to_overview)
    app.add_subapp(PREFIX, _subapp())


def _subapp() -> web.Application:
    sub = web.Application(middlewares=[_html_errors, _security_headers, access.guard])
    env = aiohttp_jinja2.setup(
        sub,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        status=present.status,
        http_status=present.http_status,
        when=present.when,
        size=present.size,
        short=present.short,
        absolute=present.absolute,
        mask=log.mask,
        masked_headers=log.masked_headers,
    )
    r = sub.router
    r.add_static("/static", HERE / "static", name="inspect:static")
    r.add_get("/", activity.overview, name="inspect:overview")
    r.add_get("/live", activity.live, name="inspect:live")
    r.add_get("/search", activity.search, name="inspect:search")
    login_page = r.add_resource("/login", name="inspect:login")
    login_page.add_route("GET", login.login_form)
    login_page.add_route("POST", login.login)
    r.add_post("/logout", login.logout)
    r.add_get("/triggers", activity.triggers)
    r.add_get("/triggers/{trigger_id}", activity.trigger)
    r.add_get("/runs", activity.runs)
    r.add_get("/runs/{run_id}", activity.run)
    r.add_post("/runs/{run_id}/redeliver", activity.redeliver_run)
    r.add_get("/deliveries", outbox.deliveries)
    r.add_get("/deliveries/{delivery_id}", outbox.delivery)
    r.add_post("/deliveries/{delivery_id}/retry", outbox.retry_delivery)
    r.add_post("/deliveries/{delivery_id}/replay", outbox.replay_delivery)
    r.add_get("/endpoints", outbox.endpoints)
    r.add_post("/endpoints", outbox.create_endpoint)
    r.add_get("/endpoints/{endpoint_id}", outbox.endpoint)
    r.add_post("/endpoints/{endpoint_id}", outbox.update_endpoint)
    r.add_post("/endpoints/{endpoint_id}/secret", outbox.endpoint_secret)
    r.add_post(
        "/endpoints/{endpoint_id}/{action:pause|resume|rotate|test|recover|delete}",
        outbox.endpoint_action,
    )
    r.add_get("/bins", bin_pages.bins_page)
    r.add_post("/bins", bin_pages.create_bin)
    r.add_get("/bins/{bin_id}/view", bin_pages.bin_page)
    r.add_post("/bins/{bin_id}/settings", bin_pages.update_bin)
    r.add_post("/bins/{bin_id}/delete", bin_pages.delete_bin)
    r.add_route("*", "/bins/{bin_id}", bins.capture, name="inspect:capture")
    return sub


async def _to_overview(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": PREFIX + "/"})


async def _default_bin_ctx(app: web.Application) -> AsyncIterator[None]:
    await choose_default_bin(app)
    yield


async def choose_default_bin(app: web.Application) -> None:
    """The bin the banner names: the newest one, or a new "default" one. (``serve --workers``
    chooses it before its children start, so they all find the same one.)"""
    store = bins.inspect_store_of(app)
    existing = await store.list_bins()
    if existing:
        app[keys.inspect_default_bin_key].bin_id = existing[-1].bin_id
    else:
        created = await store.create_bin(
            models.Bin(
                bin_id=bins.new_bin_id(), name="default", created_at=app[keys.clock_key].now()
            )
        )
        app[keys.inspect_default_bin_key].bin_id = created.bin_id


async def _end_streams(app: web.Application) -> None:
    app[keys.inspect_notifier_key].close()


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.match_info.route.name != "inspect:capture":
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


@web.middleware
async def _html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as a small page (the API's JSON errors are for programs, not people)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.match_info.route.name == "inspect:capture":
            raise
        status, reason, detail = exc.status, exc.reason, exc.text or ""
        headers = {}
    except errors.GatewayError as exc:
        if request.match_info.route.name == "inspect:capture":
            raise
        status = problems.status_of(exc)
        reason, detail = HTTPStatus(status).phrase, exc.detail
        headers = problems.headers_of(exc)
    response = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"status_code": status, "reason": reason, "detail": detail},
        status=status,
    )
    response.headers.update(headers)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def banner_lines(app: web.Application, base_url: str) -> list[str]:
    """What ``hookgate serve`` prints about ``/inspect``: the pages and a ready bin URL."""
    lines = [f"  inspect:          {base_url}{PREFIX}/"]
    bin_id = (
        app[keys.inspect_default_bin_key].bin_id if keys.inspect_default_bin_key in app else None
    )
    if bin_id:
        lines.append(f"  test bin:         {base_url}{PREFIX}/bins/{bin_id}")
    return lines
