"""The ``/inspect`` pages, by family: ``activity`` (overview, live feed, triggers, runs,
search), ``outbox`` (deliveries, endpoints), ``bin_pages`` and ``login``; here, what they share.

Handlers read through the store protocol (``Store`` and ``InspectStore``) and act through the
operator service (``gateway.outbox.admin``), as the API and the CLI do. Forms post, then
redirect back with a notice or the service's refusal as a problem (post/redirect/get).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from gateway import errors, keys, paging
from gateway.inspect import access
from gateway.outbox.admin import Admin
from gateway.store import base

PAGE_SIZE = 50

E = TypeVar("E", bound=enum.StrEnum)
T = TypeVar("T")


def now(request: web.Request) -> float:
    return request.config_dict[keys.clock_key].now()


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    settings = request.config_dict[keys.settings_key]
    session = access.session_of(request)
    context.setdefault("notice", request.query.get("notice", ""))
    context.setdefault("problem", request.query.get("problem", ""))
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            "now": now(request),
            "csrf_token": session.csrf,
            "logged_in": bool(settings.api_key),
            "base_url": base_url(request),
            "q": request.query.get("q", ""),
            **context,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def back(request: web.Request, path: str, **query: str) -> web.Response:
    """Post/redirect/get: answer a form with a 303 to ``path`` (under /inspect)."""
    location = URL("/inspect/" + path.lstrip("/")).with_query({k: v for k, v in query.items() if v})
    return web.Response(status=303, headers={"Location": str(location)})


def admin(request: web.Request) -> Admin:
    return request.config_dict[keys.admin_key]


def flow_ids(request: web.Request) -> list[str]:
    flows: Mapping[str, Any] = request.config_dict[keys.flows_key]
    return list(flows)


def cursor(request: web.Request) -> base.Position | None:
    """Where the page starts (its ``cursor``, ``gateway.paging``): None for the newest rows;
    a malformed one is 422, as on the API."""
    value = param(request, "cursor")
    if value is None:
        return None
    try:
        return paging.decode(value)
    except ValueError as exc:
        raise errors.Unprocessable(f"cursor: {exc}") from None


def pager(
    request: web.Request, page: Sequence[T], key: Callable[[T], base.Position]
) -> dict[str, str]:
    """The links a list shows under its rows: ``older`` (the next page, this page's filters
    kept) while the page is full, ``newest`` (back to the start) once paged."""
    older = paging.next_url(request.rel_url, paging.next_position(page, PAGE_SIZE, key))
    newest = request.rel_url.without_query_params("cursor") if "cursor" in request.query else None
    return {"older": str(older or ""), "newest": str(newest or "")}


def found(value: T | None, what: str) -> T:
    """``value``, or the 404 page saying ``what`` was not found."""
    if value is None:
        raise errors.NotFound(f"{what} not found")
    return value


def param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def status_filter(request: web.Request, statuses: type[E]) -> E | None:
    """The ``status`` filter, if it names one of ``statuses`` (anything else shows all)."""
    value = param(request, "status")
    if value is None or value not in statuses.__members__.values():
        return None
    return statuses(value)
