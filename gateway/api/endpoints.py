"""Subscriber endpoints and the deliveries made to them on the API: the views, and the\nadapters over the operator service (``gateway.outbox.admin``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import clock, errors, keys, log, models, paging
from gateway.api import relaying, schema
from gateway.api.schema import hookgate as hg
from gateway.outbox import routing
from gateway.outbox.admin import Admin
from gateway.store import base


def endpoint_view(
    endpoint: models.Endpoint, now: float, *, reveal_secret: bool = False
) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url or None,  # a pull endpoint has none
        "secret": endpoint.secret if reveal_secret else log.mask(endpoint.secret),
        "flow_ids": list(endpoint.flow_ids),
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "state": endpoint.state(now),
        "disabled_reason": endpoint.disabled_reason,
        "retry_schedule": None
        if endpoint.retry_schedule is None
        else list(endpoint.retry_schedule),
        "timeout": endpoint.timeout,
        "max_concurrency": endpoint.max_concurrency,
        "rate_limit": endpoint.rate_limit,
        "consecutive_failures": endpoint.consecutive_failures,
        "failing_since": clock.isoformat(endpoint.failing_since),
        "circuit_open_until": clock.isoformat(endpoint.circuit_open_until),
        "previous_secret_expires_at": clock.isoformat(endpoint.previous_secret_expires_at)
        if len(endpoint.signing_secrets(now)) > 1
        else None,
        "created_at": clock.isoformat(endpoint.created_at),
        "updated_at": clock.isoformat(endpoint.updated_at),
        **relaying.view(endpoint),
    }


def delivery_view(delivery: models.Delivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "run_id": delivery.run_id,
        "endpoint_id": delivery.endpoint_id,
        "url": delivery.url,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": clock.isoformat(delivery.next_attempt_at)
        if delivery.status is models.DeliveryStatus.PENDING
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": clock.isoformat(delivery.created_at),
        "updated_at": clock.isoformat(delivery.updated_at),
    }


def attempt_view(attempt: models.Attempt) -> dict[str, Any]:
    result = attempt.result
    return {
        "attempt": attempt.attempt,
        "started_at": clock.isoformat(result.started_at),
        "duration_ms": round(result.duration_ms, 3),
        "status_code": result.status_code,
        "response_headers": result.response_headers,
        "response_body": result.response_body.decode("utf-8", errors="replace"),
        "error": result.error,
    }


async def endpoint_input(request: web.Request, model: type[hg.EndpointPatch]) -> dict[str, Any]:
    """The body's endpoint fields, typed and bounded by ``model``; those absent are left out
    (the operator service checks the rest: ``gateway.outbox.endpoint_fields``)."""
    body = await schema.body(request, model, required=True, malformed=errors.BadRequest)
    return body.model_dump(exclude_unset=True)


def _admin(request: web.Request) -> Admin:
    return request.app[keys.admin_key]


def _now(request: web.Request) -> float:
    return request.app[keys.clock_key].now()


async def create_endpoint(request: web.Request) -> web.Response:
    data = await endpoint_input(request, hg.EndpointCreate)
    endpoint = await _admin(request).create_endpoint(data)
    return web.json_response(
        endpoint_view(endpoint, endpoint.created_at, reveal_secret=True),
        status=201,
        headers={"Location": f"/api/v1/endpoints/{endpoint.endpoint_id}"},
    )


async def list_endpoints(request: web.Request) -> web.Response:
    endpoints = await request.app[keys.store_key].list_endpoints()
    now = request.app[keys.clock_key].now()
    return web.json_response([endpoint_view(endpoint, now) for endpoint in endpoints])


async def get_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    endpoint = await _admin(request).endpoint(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    data = await endpoint_input(request, hg.EndpointPatch)
    endpoint = await _admin(request).update_endpoint(endpoint_id, data)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def pause_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    endpoint = await _admin(request).pause(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def resume_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    endpoint = await _admin(request).resume(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def rotate_secret(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    body = await schema.body(request, hg.RotateSecret, malformed=errors.BadRequest)
    endpoint = await _admin(request).rotate_secret(endpoint_id, body.secret)
    return web.json_response(endpoint_view(endpoint, _now(request), reveal_secret=True))


async def recover_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    body = await schema.body(request, hg.Recover, malformed=errors.BadRequest)
    count = await _admin(request).recover(
        endpoint_id,
        tuple(models.DeliveryStatus(s) for s in dict.fromkeys(body.status or ())),
        since=body.since,
        until=body.until,
    )
    return web.json_response({"endpoint_id": endpoint_id, "replayed": count}, status=202)


async def redeliver_run(request: web.Request) -> web.Response:
    run_id = schema.path_id(request, "run_id")
    count = await _admin(request).redeliver_run(run_id)
    return web.json_response({"run_id": run_id, "replayed": count}, status=202)


async def delete_endpoint(request: web.Request) -> web.Response:
    endpoint_id = schema.path_id(request, "endpoint_id")
    await _admin(request).delete_endpoint(endpoint_id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    query = schema.query(request, hg.DeliveriesQuery)
    selection = base.DeliverySelection(
        run_id=query.run_id,
        endpoint_id=query.endpoint_id,
        statuses=(models.DeliveryStatus(query.status),) if query.status else (),
    )
    store = request.app[keys.store_key]
    deliveries = await store.list_deliveries(selection, limit=query.limit, after=query.cursor)
    following = paging.next_position(deliveries, query.limit, paging.delivery_position)
    response = web.json_response([delivery_view(delivery) for delivery in deliveries])
    # The list's own parameters only: an x-api-key given in the query is never echoed.
    own = {k: v for k, v in request.query.items() if k in hg.DeliveriesQuery.model_fields}
    if (url := paging.next_url(request.rel_url.with_query(own), following)) is not None:
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = schema.path_id(request, "delivery_id")
    store = request.app[keys.store_key]
    delivery = await store.get_delivery(delivery_id)
    if delivery is None:
        raise errors.NotFound(f"Delivery {delivery_id} not found")
    view = delivery_view(delivery)
    view["payload"] = routing.body_value(delivery.payload)  # a raw relay's may be text
    view["headers"] = delivery.headers
    view["attempt_log"] = [attempt_view(a) for a in await store.list_attempts(delivery_id)]
    return web.json_response(view)


async def retry_delivery(request: web.Request) -> web.Response:
    delivery_id = schema.path_id(request, "delivery_id")
    delivery = await _admin(request).retry(delivery_id)
    return web.json_response(delivery_view(delivery), status=202)
