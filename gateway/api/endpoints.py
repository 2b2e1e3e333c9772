"""Subscriber endpoints and the deliveries made to them: register, inspect, retry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import clock, errors, keys, log, models, netguard, signing
from gateway.api import inputs
from gateway.flows import Flow
from gateway.store import base


def endpoint_view(endpoint: models.Endpoint, *, reveal_secret: bool = False) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "secret": endpoint.secret if reveal_secret else log.mask(endpoint.secret),
        "flow_ids": list(endpoint.flow_ids),
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "created_at": clock.isoformat(endpoint.created_at),
        "updated_at": clock.isoformat(endpoint.updated_at),
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


async def _endpoint_fields(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    """Validate the writable fields present in ``data``; absent ones are left out."""
    settings = request.app[keys.settings_key]
    fields: dict[str, Any] = {}
    url = inputs.optional(data, "url", str)
    if url is not None:
        fields["url"] = netguard.check_url(url, allow_private=settings.allow_private_networks)
    secret = inputs.optional(data, "secret", str)
    if secret is not None:
        try:
            signing.secret_key(secret)
        except ValueError as exc:
            raise errors.Unprocessable(f"secret: {exc}") from None
        fields["secret"] = secret
    known_flows: Mapping[str, Flow] = request.app[keys.flows_key]
    flow_ids = inputs.string_list(data, "flow_ids", tuple(known_flows))
    if flow_ids is not None:
        fields["flow_ids"] = flow_ids
    event_types = inputs.string_list(data, "event_types", models.EVENT_TYPES)
    if event_types is not None:
        fields["event_types"] = event_types
    description = inputs.optional(data, "description", str)
    if description is not None:
        fields["description"] = description
    enabled = inputs.optional(data, "enabled", bool)
    if enabled is not None:
        fields["enabled"] = enabled
    return fields


async def create_endpoint(request: web.Request) -> web.Response:
    data = await inputs.json_object(request)
    if not isinstance(data.get("url"), str):
        raise errors.Unprocessable("url: required, a http(s) URL")
    fields = await _endpoint_fields(request, data)
    now = request.app[keys.clock_key].now()
    endpoint = models.Endpoint(
        endpoint_id=models.new_id(),
        secret=fields.pop("secret", None) or signing.new_secret(),
        created_at=now,
        updated_at=now,
        **fields,
    )
    await request.app[keys.store_key].create_endpoint(endpoint)
    return web.json_response(
        endpoint_view(endpoint, reveal_secret=True),
        status=201,
        headers={"Location": f"/api/v1/endpoints/{endpoint.endpoint_id}"},
    )


async def list_endpoints(request: web.Request) -> web.Response:
    endpoints = await request.app[keys.store_key].list_endpoints()
    return web.json_response([endpoint_view(endpoint) for endpoint in endpoints])


async def get_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    endpoint = await request.app[keys.store_key].get_endpoint(endpoint_id)
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.json_response(endpoint_view(endpoint))


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request)
    changes = base.EndpointChanges(**await _endpoint_fields(request, data))
    now = request.app[keys.clock_key].now()
    endpoint = await request.app[keys.store_key].update_endpoint(endpoint_id, changes, now)
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.json_response(endpoint_view(endpoint))


async def delete_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    if not await request.app[keys.store_key].delete_endpoint(endpoint_id):
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    query = request.query
    status = query.get("status")
    if status is not None and status not in models.DeliveryStatus.__members__.values():
        allowed = ", ".join(s.value for s in models.DeliveryStatus)
        raise errors.Unprocessable(f"status: expected one of {allowed}")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise errors.Unprocessable("limit: expected an integer") from None
    if not 1 <= limit <= 1000:
        raise errors.Unprocessable("limit: expected 1 to 1000")
    deliveries = await request.app[keys.store_key].list_deliveries(
        run_id=query.get("run_id"),
        status=models.DeliveryStatus(status) if status else None,
        endpoint_id=query.get("endpoint_id"),
        limit=limit,
    )
    return web.json_response([delivery_view(delivery) for delivery in deliveries])


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
    store = request.app[keys.store_key]
    delivery = await store.get_delivery(delivery_id)
    if delivery is None:
        raise errors.NotFound(f"Delivery {delivery_id} not found")
    view = delivery_view(delivery)
    view["payload"] = json.loads(delivery.payload)
    view["attempt_log"] = [attempt_view(a) for a in await store.list_attempts(delivery_id)]
    return web.json_response(view)


async def retry_delivery(request: web.Request) -> web.Response:
    """Send a delivery again now, whatever its state; it keeps its ``webhook-id``."""
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
    delivery = await request.app[keys.dispatcher_key].retry(delivery_id)
    if delivery is None:
        raise errors.NotFound(f"Delivery {delivery_id} not found")
    return web.json_response(delivery_view(delivery), status=202)
