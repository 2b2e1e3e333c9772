"""The ``Store`` protocol: every durable fact hookgate keeps, in domain verbs.

Each backend owns its SQL; handlers, workers and the dispatcher only see these verbs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from gateway import models


@dataclasses.dataclass(frozen=True)
class NewRun:
    run_id: str
    flow_id: str
    input: Any
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    thread_id: str | None = None


@dataclasses.dataclass(frozen=True)
class RunEnding:
    """A run's final state and the deliveries it fans out to, written in one transaction."""

    run_id: str
    status: models.RunStatus
    output: Any
    error: dict[str, Any] | None
    deliveries: Sequence[models.NewDelivery]


@dataclasses.dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    secret: str | None = None
    flow_ids: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


class Store(Protocol):
    async def open(self) -> None:
        """Connect, create or migrate the schema, start background writers."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreError`` if the store cannot be reached."""

    # triggers and runs
    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: NewRun, now: float
    ) -> tuple[models.Run, bool]:
        """Store both in one transaction. If the trigger's idempotency key was seen for its flow,
        store nothing and return the first run with ``False``."""

    async def create_run(self, run: NewRun, now: float) -> models.Run: ...

    async def get_run(self, run_id: str) -> models.Run | None: ...

    async def get_trigger(self, trigger_id: str) -> models.Trigger | None: ...

    async def claim_runs(self, limit: int, now: float, lease_seconds: float) -> list[models.Run]:
        """Lease up to ``limit`` pending runs, or running runs whose lease expired, and mark them running."""

    async def finish_run(self, ending: RunEnding, now: float) -> models.Run | None:
        """Write the final status and enqueue the deliveries; None if the run had already ended."""

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        """Hand running runs back to the queue (graceful shutdown)."""

    async def append_event(self, run_id: str, event: str, data: Any, now: float) -> int: ...

    async def list_events(self, run_id: str, after_id: int = 0) -> list[models.Event]: ...

    # endpoints
    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint: ...

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None: ...

    async def list_endpoints(self) -> list[models.Endpoint]: ...

    async def update_endpoint(
        self, endpoint_id: str, changes: EndpointChanges, now: float
    ) -> models.Endpoint | None: ...

    async def delete_endpoint(self, endpoint_id: str) -> bool: ...

    # deliveries
    async def claim_deliveries(
        self, limit: int, now: float, lease_seconds: float
    ) -> list[models.Delivery]:
        """Lease up to ``limit`` pending deliveries whose ``next_attempt_at`` has come."""

    async def record_attempt(
        self,
        delivery_id: str,
        result: models.AttemptResult,
        status: models.DeliveryStatus,
        next_attempt_at: float | None,
    ) -> None:
        """Store one try and the delivery's new state, releasing its lease."""

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        """Make a delivery due now, whatever its state (manual retry or replay)."""

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None: ...

    async def list_deliveries(
        self,
        *,
        run_id: str | None = None,
        status: models.DeliveryStatus | None = None,
        endpoint_id: str | None = None,
        limit: int = 100,
    ) -> list[models.Delivery]: ...

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]: ...

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery becomes due, so the dispatcher can sleep until then."""
