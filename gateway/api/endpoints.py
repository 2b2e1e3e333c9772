"""Subscriber endpoints and the deliveries made to them: register, inspect, retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import clock, errors, keys, log, models, netguard, signing
from gateway.api import inputs, relaying
from gateway.flows import Flow
from gateway.outbox import routing
from gateway.outbox.delivery import check_timeout
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


async def _endpoint_fields(
    request: web.Request, data: dict[str, Any], *, creating: bool = False
) -> dict[str, Any]:
    """Validate the writable fields present in ``data``; absent ones are left out."""
    settings = request.app[keys.settings_key]
    fields: dict[str, Any] = relaying.fields(data, creating=creating)
    url = inputs.optional(data, "url", str)
    if url is not None:
        fields["url"] = netguard.check_callback(url, settings)
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
    for name, kind, minimum in (
        ("timeout", (int, float), 0.001),
        ("max_concurrency", int, 1),
        ("rate_limit", (int, float), 0.001),
    ):
        if name in data:
            value = inputs.optional(data, name, kind)
            if value is not None and value < minimum:
                raise errors.Unprocessable(f"{name}: must be at least {minimum}")
            fields[name] = value
    _check_timeout(fields.get("timeout"))
    if "retry_schedule" in data:
        fields["retry_schedule"] = inputs.delays(data, "retry_schedule")
    return fields


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    try:
        check_timeout(timeout)
    except ValueError as exc:
        raise errors.Unprocessable(f"timeout: {exc}") from None


async def create_endpoint(request: web.Request) -> web.Response:
    data = await inputs.json_object(request)
    pulled = data.get("mode") == "pull"
    if pulled and data.get("url") is not None:
        raise errors.Unprocessable("url: a pull endpoint has none: consumers fetch its deliveries")
    if not pulled and not isinstance(data.get("url"), str):
        raise errors.Unprocessable("url: required, a http(s) URL")
    fields = await _endpoint_fields(request, data, creating=True)
    fields.setdefault("url", "")
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
        endpoint_view(endpoint, now, reveal_secret=True),
        status=201,
        headers={"Location": f"/api/v1/endpoints/{endpoint.endpoint_id}"},
    )


async def list_endpoints(request: web.Request) -> web.Response:
    endpoints = await request.app[keys.store_key].list_endpoints()
    now = request.app[keys.clock_key].now()
    return web.json_response([endpoint_view(endpoint, now) for endpoint in endpoints])


async def get_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    endpoint = await request.app[keys.store_key].get_endpoint(endpoint_id)
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.json_response(endpoint_view(endpoint, request.app[keys.clock_key].now()))


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request)
    changes = await _endpoint_fields(request, data)
    store = request.app[keys.store_key]
    if "url" in changes:
        current = await store.get_endpoint(endpoint_id)
        if current is not None and current.pulled:
            raise errors.Unprocessable("url: a pull endpoint has none: consumers fetch it")
    now = request.app[keys.clock_key].now()
    endpoint = await store.update_endpoint(endpoint_id, changes, now)
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    request.app[keys.dispatcher_key].ready.set()
    return web.json_response(endpoint_view(endpoint, now))


async def pause_endpoint(request: web.Request) -> web.Response:
    """Stop sending to an endpoint; its deliveries wait, they are not dropped."""
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    now = request.app[keys.clock_key].now()
    endpoint = await request.app[keys.store_key].update_endpoint(
        endpoint_id, {"enabled": False}, now
    )
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.json_response(endpoint_view(endpoint, now))


async def resume_endpoint(request: web.Request) -> web.Response:
    """Send again: clears a pause, a disabled reason and the failure streak."""
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    now = request.app[keys.clock_key].now()
    endpoint = await request.app[keys.store_key].resume_endpoint(endpoint_id, now)
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    request.app[keys.dispatcher_key].ready.set()
    return web.json_response(endpoint_view(endpoint, now))


async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret (given or generated); the old one keeps signing too for the overlap."""
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request) if request.can_read_body else {}
    secret = inputs.optional(data, "secret", str) or signing.new_secret()
    try:
        signing.secret_key(secret)
    except ValueError as exc:
        raise errors.Unprocessable(f"secret: {exc}") from None
    now = request.app[keys.clock_key].now()
    overlap = request.app[keys.settings_key].secret_rotation_overlap
    endpoint = await request.app[keys.store_key].rotate_secret(
        endpoint_id, secret, now + overlap, now
    )
    if endpoint is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    return web.json_response(endpoint_view(endpoint, now, reveal_secret=True))


async def recover_endpoint(request: web.Request) -> web.Response:
    """Replay an endpoint's deliveries in a time range (default: the failed ones)."""
    endpoint_id = inputs.uuid_param(request, "endpoint_id", "endpoint ID")
    data = await inputs.json_object(request) if request.can_read_body else {}
    if await request.app[keys.store_key].get_endpoint(endpoint_id) is None:
        raise errors.NotFound(f"Endpoint {endpoint_id} not found")
    statuses = inputs.string_list(data, "status", tuple(s.value for s in models.DeliveryStatus))
    selection = base.DeliverySelection(
        endpoint_id=endpoint_id,
        statuses=tuple(models.DeliveryStatus(s) for s in statuses or ("failed",)),
        since=inputs.timestamp(data, "since"),
        until=inputs.timestamp(data, "until"),
    )
    count = await request.app[keys.dispatcher_key].replay(selection)
    return web.json_response({"endpoint_id": endpoint_id, "replayed": count}, status=202)


async def redeliver_run(request: web.Request) -> web.Response:
    """Send every delivery of a run again, each with its original ``webhook-id``."""
    run_id = inputs.uuid_param(request, "run_id", "run ID")
    if await request.app[keys.store_key].get_run(run_id) is None:
        raise errors.NotFound(f"Run {run_id} not found")
    count = await request.app[keys.dispatcher_key].replay(base.DeliverySelection(run_id=run_id))
    return web.json_response({"run_id": run_id, "replayed": count}, status=202)


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
    """Send a delivery again now, whatever its state; it keeps its ``webhook-id``."""
    delivery_id = inputs.uuid_param(request, "delivery_id", "delivery ID")
    delivery = await request.app[keys.dispatcher_key].retry(delivery_id)
    if delivery is None:
        raise errors.NotFound(f"Delivery {delivery_id} not found")
    return web.json_response(delivery_view(delivery), status=202)
