"""The consumer API of pull endpoints (``hookgate listen`` speaks it; so can curl):

- ``POST /api/v1/endpoints/{endpoint_id}/pull?wait=25&limit=10&lease=60``: long-poll for up to
  ``limit`` due deliveries, each leased for ``lease`` seconds, waiting up to ``wait`` for the
  first; each comes with the body and the headers (signature included) to POST to a receiver,
  beside the endpoint's state (a paused, disabled or open-circuit endpoint hands out nothing).
- ``POST /api/v1/deliveries/{delivery_id}/ack``: the receiver's answer to try ``attempt``.

POST, not GET: a pull claims work, which no prefetch or cache may do. Authenticated by the API
key like the rest of the API.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, cast

from aiohttp import web

from gateway import clock, errors, keys, models
from gateway.api import schema
from gateway.api.endpoints import delivery_view
from gateway.api.schema.hookgate import Ack, PullQuery
from gateway.outbox import pull as pulls
from gateway.outbox import templates
from gateway.outbox.delivery import MAX_RESPONSE_BYTES

MAX_ERROR = 1000


async def pull_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pull service, beside the dispatcher whose retry policy and health it shares; the
    template worker stops with the app."""
    dispatcher = app[keys.dispatcher_key]
    service = app[keys.runs_key]
    app[keys.pull_key] = pulls.PullService(
        cast(pulls.PullStore, app[keys.store_key]),  # both backends implement RelayStore
        app[keys.clock_key],
        dispatcher.policy,
        limits=pulls.Limits(
            dispatcher.limits.claim,
            dispatcher.limits.health,
            app[keys.settings_key].poll_interval,
        ),
        wakeup=service.pulls_ready,
        announcer=dispatcher,
        metrics=app[keys.metrics_key],
    )
    yield
    templates.close()


def setup(app: web.Application) -> None:
    """Start the pull service after the dispatcher (``create_app``'s contexts come first)."""
    app.cleanup_ctx.append(pull_ctx)
    app.on_shutdown.append(stop_waiting)


async def stop_waiting(app: web.Application) -> None:
    """On shutdown: long-polls answer now, so that no consumer holds the shutdown up."""
    if keys.pull_key in app:
        app[keys.pull_key].stop()


async def pull(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    query = schema.query(request, PullQuery)
    state, pulled = await request.app[keys.pull_key].pull(
        endpoint_id,
        limit=query.limit,
        wait=query.wait,
        lease_seconds=query.lease,
        gone=lambda: request.transport is None or request.transport.is_closing(),
    )
    return web.json_response(
        {"endpoint_state": state, "deliveries": [pulled_view(item) for item in pulled]}
    )


def pulled_view(item: pulls.Pulled) -> dict[str, Any]:
    delivery = item.delivery
    view: dict[str, Any] = {
        "delivery_id": delivery.delivery_id,
        "attempt": delivery.attempts,
        "event_type": delivery.event_type,
        "run_id": delivery.run_id,
        "endpoint_id": delivery.endpoint_id,
        "created_at": clock.isoformat(delivery.created_at),
        "lease_expires_at": clock.isoformat(item.lease_until),
        "headers": item.headers,
    }
    try:
        view["body"] = item.body.decode("utf-8")
    except UnicodeDecodeError:
        view["body_base64"] = base64.b64encode(item.body).decode()
    return view


async def ack(request: web.Request) -> web.Response:
    delivery_id = schema.path_id(request, "delivery_id")
    data = await schema.body(request, Ack, required=True, malformed=errors.BadRequest)
    result = _result(data, request.app[keys.clock_key].now())
    delivery = await request.app[keys.pull_key].ack(delivery_id, data.attempt, result)
    return web.json_response(delivery_view(delivery))


def _result(data: Ack, now: float) -> models.AttemptResult:
    """What the consumer's receiver answered (``status_code``, its headers and body), or why
    there was no answer (``error``, ``timed_out``), and how long it took."""
    if data.status_code is None and not data.error:
        raise errors.Unprocessable("status_code or error: one is required")
    duration_ms = data.duration_ms or 0.0
    return models.AttemptResult(
        started_at=now - duration_ms / 1000,
        duration_ms=duration_ms,
        status_code=data.status_code,
        response_headers=dict(data.response_headers or {}),
        response_body=(data.response_body or "").encode()[:MAX_RESPONSE_BYTES],
        error=None if data.error is None else data.error[:MAX_ERROR],
        timed_out=bool(data.timed_out),
    )
