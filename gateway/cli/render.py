"""The operator commands that read: ``deliveries list``, ``deliveries show`` and
``endpoints list``, as tables (secrets masked) or JSON lines."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from gateway import console, log, models
from gateway.api.endpoints import attempt_view, delivery_view, endpoint_view
from gateway.cli.errors import CommandFailed
from gateway.cli.selection import emit, known, selected
from gateway.settings import Settings
from gateway.store import Store


async def list_deliveries(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    deliveries = await store.list_deliveries(selected(args), limit=args.limit)
    if not deliveries:
        # A filter on an id that names nothing is likely a typo; deliveries of a deleted
        # endpoint are still listed, since they are found.
        await known(store, args)
    if args.json:
        for delivery in deliveries:
            emit(json.dumps(delivery_view(delivery)))
        return 0
    if not deliveries:
        emit("no deliveries")
        return 0
    header = ("ID", "STATUS", "ATTEMPTS", "LAST", "EVENT", "URL", "CREATED")
    emit(
        console.table(
            header,
            (
                (
                    d.delivery_id,
                    d.status.value,
                    str(d.attempts),
                    _last_outcome(d),
                    d.event_type,
                    console.clip(d.url, 60),
                    console.when(d.created_at),
                )
                for d in deliveries
            ),
        )
    )
    return 0


def _last_outcome(delivery: models.Delivery) -> str:
    if delivery.last_status_code is not None:
        return str(delivery.last_status_code)
    return console.clip(delivery.last_error, 40)


async def show_delivery(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    delivery = await store.get_delivery(args.delivery_id)
    if delivery is None:
        raise CommandFailed(f"unknown delivery {args.delivery_id}")
    attempts = await store.list_attempts(delivery.delivery_id)
    if args.json:
        view = delivery_view(delivery)
        view["payload"] = _payload(delivery.payload)
        view["attempt_log"] = [attempt_view(attempt) for attempt in attempts]
        emit(json.dumps(view))
        return 0
    facts = [
        ("delivery", delivery.delivery_id),
        ("status", delivery.status.value),
        ("attempts", str(delivery.attempts)),
        ("event", delivery.event_type),
        ("run", delivery.run_id or console.EMPTY),
        ("endpoint", delivery.endpoint_id or console.EMPTY),
        ("url", delivery.url),
        ("created", console.when(delivery.created_at)),
        ("updated", console.when(delivery.updated_at)),
    ]
    if delivery.status is models.DeliveryStatus.PENDING:
        facts.append(("next try", console.when(delivery.next_attempt_at)))
    emit(console.fields(facts))
    emit("")
    if not attempts:
        emit("no attempts yet")
        return 0
    header = ("#", "STARTED", "DURATION", "STATUS", "ERROR", "RESPONSE")
    rows = (
        (
            str(attempt.attempt),
            console.when(attempt.result.started_at, millis=True),
            f"{attempt.result.duration_ms:.1f} ms",
            console.EMPTY
            if attempt.result.status_code is None
            else str(attempt.result.status_code),
            console.clip(attempt.result.error, 60),
            console.snippet(attempt.result.response_body) if attempt.result.response_body else "-",
        )
        for attempt in attempts
    )
    emit(console.table(header, rows))
    return 0


def _payload(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")


async def list_endpoints(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    endpoints = await store.list_endpoints()
    now = time.time()
    if args.json:
        for endpoint in endpoints:
            emit(json.dumps(endpoint_view(endpoint, now)))  # the secret is masked
        return 0
    if not endpoints:
        emit("no endpoints")
        return 0
    header = ("ID", "URL", "STATE", "FILTERS", "FAILURES", "SECRET")
    rows = (
        (
            e.endpoint_id,
            console.clip(e.url or "(pull: hookgate listen)", 60),
            _state(e, now),
            _filters(e),
            str(e.consecutive_failures),
            log.mask(e.secret),
        )
        for e in endpoints
    )
    emit(console.table(header, rows))
    return 0


def _state(endpoint: models.Endpoint, now: float) -> str:
    state = endpoint.state(now)
    if endpoint.disabled_reason:
        state += f" ({console.clip(endpoint.disabled_reason, 40)})"
    return state


def _filters(endpoint: models.Endpoint) -> str:
    parts = []
    if endpoint.flow_ids:
        parts.append("flows=" + ",".join(endpoint.flow_ids))
    if endpoint.event_types:
        parts.append("events=" + ",".join(endpoint.event_types))
    if endpoint.filter:
        parts.append("filter=" + console.clip(endpoint.filter, 40))
    return " ".join(parts) or "all"
