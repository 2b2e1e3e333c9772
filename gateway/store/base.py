"""The ``Store`` protocol: every durable fact hookgate keeps, in domain verbs.

Each backend owns its SQL; handlers, workers and the dispatcher only see these verbs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
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


# Columns an operator may change through the API (None clears an override).
ENDPOINT_SETTABLE = (
    "url",
    "secret",
    "flow_ids",
    "event_types",
    "description",
    "enabled",
    "retry_schedule",
    "timeout",
    "max_concurrency",
    "rate_limit",
)
EndpointChanges = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ClaimPolicy:
    """Limits the claim query applies per destination."""

    max_concurrency: int
    circuit_failure_threshold: int


@dataclasses.dataclass(frozen=True)
class HealthPolicy:
    circuit_failure_threshold: int
    circuit_cooldown_seconds: float
    disable_after_seconds: float


@dataclasses.dataclass(frozen=True)
class AttemptOutcome:
    """One try and what follows from it, recorded with the endpoint's health in one transaction."""

    result: models.AttemptResult
    status: models.DeliveryStatus
    next_attempt_at: float | None = None
    disable_endpoint: str | None = None
    health: HealthPolicy | None = None


@dataclasses.dataclass(frozen=True)
class HealthChange:
    """An endpoint changed state: ``endpoint.circuit_opened``, ``endpoint.disabled``, ``endpoint.recovered``."""

    event_type: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DeliverySelection:
    run_id: str | None = None
    endpoint_id: str | None = None
    statuses: tuple[models.DeliveryStatus, ...] = ()
    since: float | None = None
    until: float | None = None


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
        """Store both in one transaction. If the trigger's idempotency key was seen for its flow
        within ``trigger.dedup_window`` seconds before its ``received_at`` (by a trigger that
        started a run), store nothing and return that run with ``False``."""

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        """Store a trigger that failed verification: kept for inspection, starts no run."""

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
    ) -> models.Endpoint | None:
        """Set the given ``ENDPOINT_SETTABLE`` columns."""

    async def resume_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint | None:
        """Enable it, clear a disabled reason and the failure streak."""

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        """Make ``secret`` current; the old one keeps signing too until ``overlap_until``."""

    async def delete_endpoint(self, endpoint_id: str) -> bool: ...

    # deliveries
    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None: ...

    async def claim_deliveries(
        self, limit: int, now: float, lease_seconds: float, policy: ClaimPolicy
    ) -> list[models.Delivery]:
        """Lease up to ``limit`` due deliveries, fairly across destinations, skipping held endpoints."""

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        """Release a claimed delivery unsent, due again at ``until``; uses up no attempt."""

    async def record_attempt(
        self, delivery: models.Delivery, outcome: AttemptOutcome
    ) -> HealthChange | None:
        """Store one try, the delivery's new state and its endpoint's health, releasing the lease."""

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        """Make a delivery due now, whatever its state (manual retry or replay)."""

    async def replay_deliveries(self, selection: DeliverySelection, now: float) -> int:
        """Make every selected delivery due now; how many."""

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None: ...

    async def list_deliveries(
        self, selection: DeliverySelection, limit: int = 100
    ) -> list[models.Delivery]: ...

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]: ...

    async def delivery_backlog(self, now: float) -> tuple[int, float | None]:
        """How many deliveries are pending, and since when the oldest due one has been due."""

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery becomes due, so the dispatcher can sleep until then."""
