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
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from aiohttp import web

from gateway import clock, errors, keys, models
from gateway.api import inputs
from gateway.api.endpoints import delivery_view
from gateway.outbox import pull as pulls
from gateway.outbox import templates
from gateway.outbox.delivery import MAX_RESPONSE_BYTES

pull_key = web.AppKey("pull", pulls.PullService)
DEFAULT_LIMIT = 10
DEFAULT_LEASE = 60.0
MAX_ERROR = 1000
MAX_ACK_HEADERS = 100


async def pull_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pull service, beside the dispatcher whose retry policy and health it shares; the
    template worker stops with the app."""
    dispatcher = app[keys.dispatcher_key]
    service = app[keys.runs_key]
    app[pull_key] = pulls.PullService(
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
    if pull_key in app:
        app[pull_key].stop()


async def pull(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    query = request.query
    limit = inputs.integer(
        inputs.query_integers(query, "limit"), "limit", DEFAULT_LIMIT, 1, pulls.MAX_LIMIT
    )
    wait = _query_seconds(query, "wait", 0.0, 0.0, pulls.MAX_WAIT)
    lease = _query_seconds(query, "lease", DEFAULT_LEASE, pulls.MIN_LEASE, pulls.MAX_LEASE)
    state, pulled = await request.app[pull_key].pull(
        endpoint_id,
        limit=limit,
        wait=wait,
        lease_seconds=lease,
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
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
    data = await inputs.json_object(request)
    attempt = inputs.integer(data, "attempt", 0, 1, 2**31 - 1)
    if attempt == 0:
        raise errors.Unprocessable("attempt: required, the try being acknowledged (from the pull)")
    result = _result(data, request.app[keys.clock_key].now())
    delivery = await request.app[pull_key].ack(delivery_id, attempt, result)
    return web.json_response(delivery_view(delivery))


def _result(data: Mapping[str, Any], now: float) -> models.AttemptResult:
    """What the consumer's receiver answered (``status_code``, its headers and body), or why
    there was no answer (``error``, ``timed_out``), and how long it took."""
    status = data.get("status_code")
    if status is not None:
        status = inputs.integer(data, "status_code", 0, 100, 599)
    error = inputs.optional(data, "error", str)
    if status is None and not error:
        raise errors.Unprocessable("status_code or error: one is required")
    duration = data.get("duration_ms")
    duration_ms = (
        0.0 if duration is None else inputs.bounded(duration, "duration_ms", 0, 86_400_000)
    )
    headers = inputs.optional(data, "response_headers", dict) or {}
    if len(headers) > MAX_ACK_HEADERS or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise errors.Unprocessable(
            f"response_headers: expected an object of at most {MAX_ACK_HEADERS} strings"
        )
    body = inputs.optional(data, "response_body", str) or ""
    return models.AttemptResult(
        started_at=now - duration_ms / 1000,
        duration_ms=duration_ms,
        status_code=status,
        response_headers=dict(headers),
        response_body=body.encode()[:MAX_RESPONSE_BYTES],
        error=None if error is None else error[:MAX_ERROR],
        timed_out=bool(inputs.optional(data, "timed_out", bool)),
    )


def _query_seconds(
    query: Mapping[str, str], name: str, default: float, minimum: float, maximum: float
) -> float:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise errors.Unprocessable(f"{name}: expected seconds, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise errors.Unprocessable(f"{name}: expected seconds, got {text[:40]!r}")
    return inputs.bounded(value, name, minimum, maximum, " seconds")
