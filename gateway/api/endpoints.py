"""Subscriber endpoints and the deliveries made to them on the API: the views, and the\nadapters over the operator service (``gateway.outbox.admin``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import clock, errors, keys, log, models
from gateway.api import inputs, relaying
from gateway.outbox import endpoint_fields, routing
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


def endpoint_input(data: Mapping[str, Any]) -> dict[str, Any]:
    """The body's endpoint fields, each read as the type the service checks
    (``gateway.outbox.endpoint_fields``); those absent are left out."""
    typed: dict[str, Any] = {}
    for name, kind in endpoint_fields.TYPES.items():
        if name in data:
            typed[name] = inputs.optional(data, name, kind)
    for name in endpoint_fields.LISTS:
        if name in data:
            typed[name] = inputs.string_list(data, name)
    if "retry_schedule" in data:
        typed["retry_schedule"] = inputs.delays(data, "retry_schedule")
    if "transform" in data:
        typed["transform"] = data["transform"]
    return typed


def _admin(request: web.Request) -> Admin:
    return request.app[keys.admin_key]


def _now(request: web.Request) -> float:
    return request.app[keys.clock_key].now()


async def create_endpoint(request: web.Request) -> web.Response:
    data = endpoint_input(await inputs.json_object(request))
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
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    endpoint = await _admin(request).endpoint(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = endpoint_input(await inputs.json_object(request))
    endpoint = await _admin(request).update_endpoint(endpoint_id, data)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def pause_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    endpoint = await _admin(request).pause(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def resume_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    endpoint = await _admin(request).resume(endpoint_id)
    return web.json_response(endpoint_view(endpoint, _now(request)))


async def rotate_secret(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request) if request.can_read_body else {}
    secret = inputs.optional(data, "secret", str)
    endpoint = await _admin(request).rotate_secret(endpoint_id, secret)
    return web.json_response(endpoint_view(endpoint, _now(request), reveal_secret=True))


async def recover_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request) if request.can_read_body else {}
    statuses = inputs.string_list(data, "status", tuple(s.value for s in models.DeliveryStatus))
    count = await _admin(request).recover(
        endpoint_id,
        tuple(models.DeliveryStatus(s) for s in statuses or ()),
        since=inputs.timestamp(data, "since"),
        until=inputs.timestamp(data, "until"),
    )
    return web.json_response({"endpoint_id": endpoint_id, "replayed": count}, status=202)


async def redeliver_run(request: web.Request) -> web.Response:
    run_id = inputs.uuid_param(request, "run_id", "run ID")
    count = await _admin(request).redeliver_run(run_id)
    return web.json_response({"run_id": run_id, "replayed": count}, status=202)


async def delete_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    await _admin(request).delete_endpoint(endpoint_id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    query = request.query
    status = query.get("status")
    if status is not None and status not in models.DeliveryStatus.__members__.values():
        allowed = ", ".join(s.value for s in models.DeliveryStatus)
        raise errors.Unprocessable(f"status: expected one of {allowed}")
    limit, _ = inputs.page(inputs.query_integers(query, "limit"), default_limit=100)
    selection = base.DeliverySelection(
        run_id=query.get("run_id"),
        endpoint_id=query.get("endpoint_id"),
        statuses=(models.DeliveryStatus(status),) if status else (),
    )
    deliveries = await request.app[keys.store_key].list_deliveries(selection, limit=limit)
    return web.json_response([delivery_view(delivery) for delivery in deliveries])


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
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
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
    delivery = await _admin(request).retry(delivery_id)
    return web.json_response(delivery_view(delivery), status=202)
