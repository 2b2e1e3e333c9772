"""What ``/inspect`` shows of relaying: where a trigger went (a delivery per endpoint, or
"filtered" and why), and a delivery's payload before and after its endpoint's transform."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from gateway import models
from gateway.inspect import present
from gateway.outbox import routing
from gateway.outbox.delivery import USER_AGENT
from gateway.store import Store, base


@dataclasses.dataclass(frozen=True)
class Route:
    endpoint_id: str
    label: str
    status: str
    delivery_id: str | None = None
    reason: str = ""


async def trigger_routes(store: Store, trigger: models.Trigger) -> list[Route]:
    """The registered endpoints the trigger's run reached, and those whose filter turned it
    away; empty for a trigger without a run."""
    if trigger.run_id is None:
        return []
    deliveries = await store.list_deliveries(base.DeliverySelection(run_id=trigger.run_id))
    filtered = await cast(base.RelayStore, store).list_filtered(trigger.run_id)
    endpoints = {e.endpoint_id: e for e in await store.list_endpoints()}

    def label(endpoint_id: str) -> str:
        endpoint = endpoints.get(endpoint_id)
        if endpoint is None:
            return "(deleted)"
        return endpoint.description or endpoint.url or f"pull endpoint {endpoint_id}"

    routes = [
        Route(d.endpoint_id, label(d.endpoint_id), d.status.value, d.delivery_id)
        for d in reversed(deliveries)
        if d.endpoint_id is not None
    ]
    routes += [
        Route(f.endpoint_id, label(f.endpoint_id), "filtered", reason=f.reason) for f in filtered
    ]
    return routes


async def payload_views(
    delivery: models.Delivery, endpoint: models.Endpoint | None
) -> dict[str, Any]:
    """The stored payload (what the transform takes), and what the endpoint's transform, as it
    is now, makes of it (what every try sends), or why it fails."""
    content_type = delivery.headers.get("Content-Type", "application/json")
    views: dict[str, Any] = {
        "payload": present.body_view(delivery.payload, content_type),
        "transformed": None,
        "transform_error": "",
    }
    if endpoint is None or not endpoint.transform:
        return views
    try:
        sent = await routing.outgoing(delivery, endpoint)
    except routing.TransformFailed as exc:
        views["transform_error"] = str(exc)
    else:
        views["transformed"] = present.body_view(sent.payload, "application/json")
    return views


def sent_headers(
    delivery: models.Delivery, started_at: float, endpoint: models.Endpoint | None = None
) -> list[tuple[str, str]]:
    """The headers every try carries: a raw relay's ``Content-Type`` and forwarded headers,
    then hookgate's own."""
    extra = dict(delivery.headers)
    if endpoint is not None and endpoint.transform:
        extra["Content-Type"] = "application/json"
    return [
        ("Content-Type", extra.pop("Content-Type", "application/json")),
        ("User-Agent", USER_AGENT),
        *extra.items(),
        ("webhook-id", delivery.delivery_id),
        ("webhook-timestamp", str(int(started_at))),
        ("webhook-signature", "v1,… (HMAC-SHA256 of id.timestamp.body, one per active secret)"),
    ]
