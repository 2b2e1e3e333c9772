"""Rows to models and models to column values, the same on both backends.

A row is what either driver returns (``sqlite3.Row``, ``asyncpg.Record``): columns by name.
Both backends keep JSON as text (SQLite ``TEXT``, PostgreSQL ``json``/``jsonb``, which asyncpg
hands over as text) and blobs as bytes; SQLite's booleans are integers, so they pass ``bool``.
Each model's fields are named as its table's columns.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gateway import models
from gateway.outbox import limits
from gateway.store import base, thread_store
from gateway.store.retention import thread_expiry
from gateway.store.secretbox import SecretBox

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Model = TypeVar("Model", bound=DataclassInstance)


class Row(Protocol):
    """Columns by name."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, key: str, /) -> Any: ...


class Values(Protocol):
    """Columns by position."""

    def __getitem__(self, index: int, /) -> Any: ...


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _model(cls: type[Model], row: Row, **decoded: Any) -> Model:
    """``cls`` from the row's columns named as its fields, ``decoded`` in place of the stored
    form of some; a field with no column (a default) keeps its default."""
    columns = set(row.keys())
    fields = {name: row[name] for name in _field_names(cls) if name in columns}
    return cls(**{**fields, **decoded})


def trigger(row: Row) -> models.Trigger:
    return _model(models.Trigger, row, headers=loads(row["headers"]), body=bytes(row["body"]))


def run(row: Row) -> models.Run:
    return _model(
        models.Run,
        row,
        status=models.RunStatus(row["status"]),
        **{name: loads(row[name]) for name in ("input", "kwargs", "metadata", "output", "error")},
    )


def inserted_run(row: Row, new: base.NewRun) -> models.Run:
    """The row of a run just inserted from ``new``: its JSON columns are ``new``'s values, not
    decoded back from the text they were encoded to a moment ago."""
    return _model(
        models.Run,
        row,
        status=models.RunStatus(row["status"]),
        input=new.input,
        kwargs=new.kwargs,
        metadata=new.metadata,
        output=None,
        error=None,
    )


def event(row: Row) -> models.Event:
    return _model(models.Event, row, data=loads(row["data"]))


def endpoint(row: Row, secrets: SecretBox) -> models.Endpoint:
    """An endpoint with its secrets opened (they are stored sealed, see ``secretbox``)."""
    previous = row["previous_secret"]
    forward = loads(row["forward_headers"])
    schedule = loads(row["retry_schedule"])
    return _model(
        models.Endpoint,
        row,
        secret=secrets.open(row["secret"]),
        previous_secret=None if previous is None else secrets.open(previous),
        flow_ids=tuple(loads(row["flow_ids"])),
        event_types=tuple(loads(row["event_types"])),
        forward_headers=None if forward is None else tuple(forward),
        retry_schedule=None if schedule is None else tuple(schedule),
        enabled=bool(row["enabled"]),
    )


def rate_bucket(row: Row) -> limits.Bucket | None:
    """An endpoint's stored rate-limit bucket; None while it was never drawn from (full)."""
    if row["rate_updated_at"] is None:
        return None
    return limits.Bucket(row["rate_tokens"], row["rate_updated_at"])


_ENDPOINT_LISTS = ("flow_ids", "event_types", "retry_schedule", "forward_headers")


def endpoint_value(name: str, value: Any) -> Any:
    """An endpoint field as its column holds it: lists and tuples are JSON."""
    if name in _ENDPOINT_LISTS:
        return None if value is None else dumps(list(value))
    return value


def endpoint_columns(endpoint: models.Endpoint, secrets: SecretBox) -> dict[str, Any]:
    """A new endpoint's column values, its secrets sealed."""
    columns = {
        name: endpoint_value(name, getattr(endpoint, name))
        for name in _field_names(models.Endpoint)
    }
    columns["secret"] = secrets.seal(endpoint.secret)
    if endpoint.previous_secret is not None:
        columns["previous_secret"] = secrets.seal(endpoint.previous_secret)
    return columns


def endpoint_changes(
    changes: base.EndpointChanges, secrets: SecretBox, now: float
) -> dict[str, Any]:
    """The column values ``update_endpoint`` sets: ``changes`` (``ENDPOINT_SETTABLE`` only),
    a new secret sealed, and ``updated_at``."""
    settable(changes, base.ENDPOINT_SETTABLE)
    values = {name: endpoint_value(name, value) for name, value in changes.items()}
    if "secret" in changes:
        values["secret"] = secrets.seal(changes["secret"])
    values["updated_at"] = now
    return values


def resumed(now: float) -> dict[str, Any]:
    """The column values ``resume_endpoint`` sets: enabled, and the failure streak cleared."""
    return {
        "enabled": True,
        "disabled_reason": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "circuit_open_until": None,
        "updated_at": now,
    }


def settable(changes: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValueError(f"not settable: {sorted(unknown)}")


def delivery(row: Row) -> models.Delivery:
    return _model(
        models.Delivery,
        row,
        payload=bytes(row["payload"]),
        status=models.DeliveryStatus(row["status"]),
        headers=loads(row["headers"]) or {},
    )


def attempt(row: Row) -> models.Attempt:
    result = _model(
        models.AttemptResult,
        row,
        response_headers=loads(row["response_headers"]),
        response_body=bytes(row["response_body"]),
    )
    return _model(models.Attempt, row, result=result)


def thread(row: Row) -> models.Thread:
    return _model(
        models.Thread,
        row,
        **{name: loads(row[name]) for name in ("metadata", "config", "ttl")},
    )


def thread_values(thread: models.Thread) -> tuple[Any, ...]:
    """Column values of a new thread: ``THREAD_COLUMNS``."""
    return (
        thread.thread_id,
        dumps(thread.metadata),
        dumps(thread.config),
        dumps_or_none(thread.ttl),
        thread.created_at,
        thread.updated_at,
        thread_expiry(thread.ttl),
    )


THREAD_COLUMNS = "thread_id, metadata, config, ttl, created_at, updated_at, expires_at"


def cron_value(name: str, value: Any) -> Any:
    return dumps(value) if name in ("payload", "metadata") else value


def cron_columns(cron: models.Cron) -> dict[str, Any]:
    return {name: cron_value(name, getattr(cron, name)) for name in _field_names(models.Cron)}


def cron_changes(changes: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The column values ``update_cron`` sets: ``changes`` (``CRON_SETTABLE`` only) and
    ``updated_at``."""
    settable(changes, thread_store.CRON_SETTABLE)
    values = {name: cron_value(name, value) for name, value in changes.items()}
    values["updated_at"] = now
    return values


def cron(row: Row) -> models.Cron:
    return _model(
        models.Cron,
        row,
        payload=loads(row["payload"]),
        metadata=loads(row["metadata"]),
        enabled=bool(row["enabled"]),
    )


def bin_(row: Row) -> models.Bin:
    return _model(models.Bin, row)


def capture(row: Row) -> models.CapturedRequest:
    return _model(
        models.CapturedRequest, row, headers=loads(row["headers"]), body=bytes(row["body"])
    )


def checkpoints(
    thread_id: str, values: Sequence[Row], outputs: Sequence[Row], states: Sequence[Row]
) -> list[models.Checkpoint]:
    """A thread's checkpoints, newest first: each ``values`` event of its runs (``id``,
    ``run_id``, ``data``, ``created_at``), the output of each successful run that streamed
    none (``run_id``, ``output``, ``ended_at``), and each state set by hand (``thread_states``)."""
    with_values = {row["run_id"] for row in values}
    found = [
        models.Checkpoint(
            checkpoint_id=str(uuid.UUID(int=row["id"])),
            thread_id=thread_id,
            values=loads(row["data"]),
            created_at=row["created_at"],
            source="loop",
            run_id=row["run_id"],
            order=row["id"],
        )
        for row in values
    ]
    found.extend(
        models.Checkpoint(
            checkpoint_id=str(uuid.uuid5(uuid.NAMESPACE_URL, row["run_id"])),
            thread_id=thread_id,
            values=loads(row["output"]),
            created_at=row["ended_at"],
            source="loop",
            run_id=row["run_id"],
        )
        for row in outputs
        if row["run_id"] not in with_values
    )
    found.extend(
        models.Checkpoint(
            checkpoint_id=row["checkpoint_id"],
            thread_id=thread_id,
            values=loads(row["state_values"]),
            created_at=row["created_at"],
            source="update",
            as_node=row["as_node"],
        )
        for row in states
    )
    return sorted(found, key=lambda c: (c.created_at, c.order), reverse=True)


def inspect_counts(
    totals: Values, runs: Iterable[Values], deliveries: Iterable[Values]
) -> base.InspectCounts:
    """From the totals row (triggers, triggers since, rejected since, runs since, attempts
    since, attempts answered 2xx since) and ``(status, count)`` rows of runs and deliveries."""
    return base.InspectCounts(
        triggers=totals[0],
        triggers_since=totals[1],
        rejected_since=totals[2],
        runs={row[0]: row[1] for row in runs},
        runs_since=totals[3],
        deliveries={row[0]: row[1] for row in deliveries},
        attempts_since=totals[4],
        attempts_ok_since=totals[5],
    )


def trigger_values(trigger: models.Trigger, run_id: str | None) -> tuple[Any, ...]:
    """Column values of a trigger row, in ``TRIGGER_COLUMNS`` order."""
    return (
        trigger.trigger_id,
        trigger.flow_id,
        trigger.received_at,
        trigger.method,
        trigger.path,
        trigger.query,
        dumps(trigger.headers),
        trigger.body,
        trigger.content_type,
        trigger.source,
        trigger.idempotency_key,
        run_id,
        trigger.verification,
    )


def new_run_values(
    run: base.NewRun,
    now: float,
    trigger_id: str | None,
    owner: str | None,
    started_at: float | None = None,
) -> tuple[Any, ...]:
    """Column values of a new run, in ``RUN_COLUMNS`` order; ``owner``: the lease's, for a
    run stored already claimed (``run.lease_until``), which starts at ``started_at`` (``now``
    if not given)."""
    claimed = run.lease_until is not None
    return (
        run.run_id,
        run.thread_id,
        run.flow_id,
        "running" if claimed else "pending",
        dumps(run.input),
        dumps(run.kwargs),
        dumps(run.metadata),
        now + run.after_seconds,
        now,
        trigger_id,
        1 if claimed else 0,
        (now if started_at is None else started_at) if claimed else None,
        run.lease_until,
        owner if claimed else None,
    )


def new_delivery_values(
    run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
) -> list[tuple[Any, ...]]:
    """Column values of new deliveries, in ``DELIVERY_COLUMNS`` order, one tuple each."""
    return [
        (
            d.delivery_id,
            run_id,
            d.endpoint_id,
            d.url,
            d.event_type,
            d.payload,
            now,
            now,
            now,
            d.origin_at,
            dumps(d.headers) if d.headers else None,
        )
        for d in deliveries
    ]


def outcome_values(
    delivery: models.Delivery, outcome: base.AttemptOutcome
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The parameters of the two statements recording a try's outcome (``sql``): the
    delivery's new state, then the try's result."""
    result = outcome.result
    return (
        (
            outcome.status.value,
            outcome.next_attempt_at,
            result.status_code,
            result.error,
            result.started_at + result.duration_ms / 1000,
            delivery.delivery_id,
        ),
        (
            result.started_at,
            result.duration_ms,
            result.status_code,
            dumps(result.response_headers),
            result.response_body,
            result.error,
            delivery.delivery_id,
            delivery.attempts,
            base.ATTEMPT_OUTCOME_UNKNOWN,
        ),
    )
