"""Rows of the PostgreSQL store to models and back: JSON columns travel as text."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gateway import models
from gateway.store import base
from gateway.store.postgres.pool import Record
from gateway.store.secretbox import SecretBox


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def trigger(row: Record) -> models.Trigger:
    fields = dict(row)
    fields["headers"] = loads(fields["headers"])
    fields["body"] = bytes(fields["body"])
    return models.Trigger(**fields)


def run(row: Record) -> models.Run:
    return models.Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        flow_id=row["flow_id"],
        status=models.RunStatus(row["status"]),
        input=loads(row["input"]),
        kwargs=loads(row["kwargs"]),
        metadata=loads(row["metadata"]),
        output=loads(row["output"]),
        error=loads(row["error"]),
        attempt=row["attempt"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        trigger_id=row["trigger_id"],
        cancel_reason=row["cancel_reason"],
    )


def event(row: Record) -> models.Event:
    return models.Event(
        id=row["id"],
        run_id=row["run_id"],
        event=row["event"],
        data=loads(row["data"]),
        created_at=row["created_at"],
    )


def endpoint(row: Record, secrets: SecretBox) -> models.Endpoint:
    """An endpoint with its secrets opened (they are stored sealed, see ``secretbox``)."""
    fields = dict(row)
    fields["secret"] = secrets.open(fields["secret"])
    if fields["previous_secret"] is not None:
        fields["previous_secret"] = secrets.open(fields["previous_secret"])
    fields["flow_ids"] = tuple(loads(fields["flow_ids"]))
    fields["event_types"] = tuple(loads(fields["event_types"]))
    forward = loads(fields["forward_headers"])
    fields["forward_headers"] = None if forward is None else tuple(forward)
    schedule = loads(fields["retry_schedule"])
    fields["retry_schedule"] = None if schedule is None else tuple(schedule)
    return models.Endpoint(**fields)


def endpoint_value(name: str, value: Any) -> Any:
    """An endpoint field as its column holds it: lists and tuples are JSON."""
    if name in ("flow_ids", "event_types", "retry_schedule", "forward_headers"):
        return None if value is None else dumps(list(value))
    return value


def endpoint_columns(endpoint: models.Endpoint) -> dict[str, Any]:
    return {
        field.name: endpoint_value(field.name, getattr(endpoint, field.name))
        for field in dataclasses.fields(endpoint)
    }


def delivery(row: Record) -> models.Delivery:
    return models.Delivery(
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        event_type=row["event_type"],
        payload=bytes(row["payload"]),
        status=models.DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        origin_at=row["origin_at"],
        headers=loads(row["headers"]) or {},
    )


def attempt(row: Record) -> models.Attempt:
    return models.Attempt(
        attempt_id=row["attempt_id"],
        delivery_id=row["delivery_id"],
        attempt=row["attempt"],
        result=models.AttemptResult(
            started_at=row["started_at"],
            duration_ms=row["duration_ms"],
            status_code=row["status_code"],
            response_headers=loads(row["response_headers"]),
            response_body=bytes(row["response_body"]),
            error=row["error"],
        ),
    )


def thread(row: Record) -> base.Thread:
    return base.Thread(
        thread_id=row["thread_id"],
        metadata=loads(row["metadata"]),
        config=loads(row["config"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        ttl=loads(row["ttl"]),
    )


def cron_value(name: str, value: Any) -> Any:
    return dumps(value) if name in ("payload", "metadata") else value


def cron_columns(cron: base.Cron) -> dict[str, Any]:
    return {
        field.name: cron_value(field.name, getattr(cron, field.name))
        for field in dataclasses.fields(cron)
    }


def cron(row: Record) -> base.Cron:
    fields = dict(row)
    fields["payload"] = loads(fields["payload"])
    fields["metadata"] = loads(fields["metadata"])
    return base.Cron(**fields)


def bin_(row: Record) -> base.Bin:
    return base.Bin(
        bin_id=row["bin_id"],
        name=row["name"],
        created_at=row["created_at"],
        reply_status=row["reply_status"],
        reply_delay=row["reply_delay"],
        verify_with=row["verify_with"],
        captures=row["captures"],
    )


def capture(row: Record) -> base.CapturedRequest:
    return base.CapturedRequest(
        capture_id=row["capture_id"],
        bin_id=row["bin_id"],
        received_at=row["received_at"],
        method=row["method"],
        path=row["path"],
        query=row["query"],
        headers=loads(row["headers"]),
        body=bytes(row["body"]),
        content_type=row["content_type"],
        source=row["source"],
    )
