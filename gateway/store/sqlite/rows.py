"""Rows of the SQLite store to models and back: JSON columns are text, booleans integers."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from gateway import models
from gateway.store import base
from gateway.store.secretbox import SecretBox


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def cron_value(name: str, value: Any) -> Any:
    return dumps(value) if name in ("payload", "metadata") else column_value(value)


def attempt(row: sqlite3.Row) -> models.Attempt:
    return models.Attempt(
        attempt_id=row["attempt_id"],
        delivery_id=row["delivery_id"],
        attempt=row["attempt"],
        result=models.AttemptResult(
            started_at=row["started_at"],
            duration_ms=row["duration_ms"],
            status_code=row["status_code"],
            response_headers=loads(row["response_headers"]),
            response_body=row["response_body"],
            error=row["error"],
        ),
    )


def run(row: sqlite3.Row) -> models.Run:
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


def endpoint(row: sqlite3.Row, secrets: SecretBox) -> models.Endpoint:
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
    fields["enabled"] = bool(fields["enabled"])
    return models.Endpoint(**fields)


def event(row: sqlite3.Row) -> models.Event:
    return models.Event(
        id=row["id"],
        run_id=row["run_id"],
        event=row["event"],
        data=loads(row["data"]),
        created_at=row["created_at"],
    )


def column_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value


def endpoint_columns(endpoint: models.Endpoint) -> dict[str, Any]:
    return {
        field.name: column_value(getattr(endpoint, field.name))
        for field in dataclasses.fields(endpoint)
    }


def delivery(row: sqlite3.Row) -> models.Delivery:
    return models.Delivery(
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        event_type=row["event_type"],
        payload=row["payload"],
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


def trigger(row: sqlite3.Row) -> models.Trigger:
    fields = dict(row)
    fields["headers"] = loads(fields["headers"])
    return models.Trigger(**fields)


def bin_(row: sqlite3.Row) -> base.Bin:
    return base.Bin(
        bin_id=row["bin_id"],
        name=row["name"],
        created_at=row["created_at"],
        reply_status=row["reply_status"],
        reply_delay=row["reply_delay"],
        verify_with=row["verify_with"],
        captures=row["captures"],
    )


def capture(row: sqlite3.Row) -> base.CapturedRequest:
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


def thread(row: sqlite3.Row) -> base.Thread:
    return base.Thread(
        thread_id=row["thread_id"],
        metadata=loads(row["metadata"]),
        config=loads(row["config"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        ttl=loads(row["ttl"]),
    )


def cron_columns(cron: base.Cron) -> dict[str, Any]:
    columns = {}
    for field in dataclasses.fields(cron):
        value = getattr(cron, field.name)
        columns[field.name] = (
            dumps(value) if field.name in ("payload", "metadata") else column_value(value)
        )
    return columns


def cron(row: sqlite3.Row) -> base.Cron:
    fields = dict(row)
    fields["payload"] = loads(fields["payload"])
    fields["metadata"] = loads(fields["metadata"])
    fields["enabled"] = bool(fields["enabled"])
    return base.Cron(**fields)
