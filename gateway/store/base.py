"""The ``Store`` protocol: every durable fact hookgate keeps, in domain verbs.

Each backend owns its SQL; handlers, workers and the dispatcher only see these verbs.

Every write verb is atomic (one transaction). These rules hold with N writers, processes
sharing one PostgreSQL database, as they do with SQLite's single writer:

- ``create_trigger_and_run``: one run per (flow, idempotency key) within the window;
- ``create_run`` with ``if_thread_idle``: no two such runs both find their thread idle;
- ``claim_runs``: a run goes to one claimer per lease; a thread runs one run at a time,
  oldest first;
- ``renew_run_leases``, ``renew_delivery_leases``: a lease is renewed only by its owner, and
  never once another claimer took the work after it lapsed;
- ``finish_run``: a run ends once and enqueues its deliveries once;
- ``claim_deliveries``: a delivery goes to one claimer per lease; an endpoint's cap counts
  the leases of every claimer;
- ``record_attempt``: an endpoint's failure streak counts every writer's attempts;
- ``fire_cron`` (``thread_store.ThreadStore``): a due date fires once, whichever scheduler
  gets there first.

The contract suite (tests/integration/store_contract/) checks them on each backend.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway import models
from gateway.store.retention import Cutoffs, Pruned


@dataclasses.dataclass(frozen=True)
class NewRun:
    run_id: str
    flow_id: str
    input: Any
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    thread_id: str | None = None
    after_seconds: float = 0.0
    """A delayed run: its ``created_at`` is that far ahead (as LangGraph shows it), and it is
    not claimed before then."""
    lease_until: float | None = None
    """Set when the creating process runs it itself: stored already claimed (running, attempt 1)
    with this lease, saving a claim on the way from trigger to callback."""
    thread_metadata: Mapping[str, Any] | None = None
    """Merged into its thread's metadata (the thread's ``updated_at`` set) in the same
    transaction, as LangGraph records which graph last ran on a thread."""
    if_thread_idle: bool = False
    """Store it only if its thread has no pending or running run, else raise ``Conflict``
    (LangGraph's multitask "reject"); checked and inserted as one step for N writers."""


NewEvent = tuple[str, str]
"""An event to append: its name and its data, already encoded as JSON text."""


@dataclasses.dataclass(frozen=True)
class RunEnding:
    """A run's final state and the deliveries it fans out to, written in one transaction."""

    run_id: str
    status: models.RunStatus
    output: Any
    error: dict[str, Any] | None
    deliveries: Sequence[models.NewDelivery]
    events: Sequence[NewEvent] = ()
    """Its last events (the final one last), appended to the run's event log in the same
    transaction, so a reader who sees the run ended also finds them."""
    filtered: Sequence[models.FilteredRoute] = ()
    """Endpoints whose filter turned the event away, recorded with the ending."""


@dataclasses.dataclass(frozen=True)
class RunEnded:
    """What a run's ending wrote: the ids its events got, in order, which this process's live
    readers are handed without reading them back. Nothing else is read back: the caller holds
    the run and its ending already."""

    run_id: str
    thread_id: str | None
    event_ids: Sequence[int]


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
    "payload",
    "forward_headers",
    "filter",
    "transform",
    "transform_language",
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


ATTEMPT_OUTCOME_UNKNOWN = "outcome unknown: the gateway stopped during the attempt"
"""The error of a try recorded as started whose lease ran out before its outcome was recorded
(the process stopped mid-send): the receiver may or may not have got it."""


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
    flow_id: str | None = None
    """Only the deliveries of this flow's runs."""


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a newest-first list stopped: the sort key of the last row it gave, its time
    (``created_at``, a trigger's ``received_at``) and its id. The next page is what sorts after
    it (keyset paging), so rows that arrive or go meanwhile shift nothing: no gap, no repeat,
    and a page deep in a million rows costs what the first one does."""

    at: float
    id: str


def new_owner() -> str:
    """A name for the leases one store instance takes: ``host:pid:random``, unique across hosts
    and restarts, and telling an operator which process holds what."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Store(Protocol):
    @property
    def owner(self) -> str:
        """The name (``new_owner``) recorded on every lease this store instance takes, and on
        the runs it ends; one per gateway process."""

    async def open(self) -> None:
        """Connect, create or migrate the schema, start background writers."""

    async def close(self) -> None: ...

    async def migrate(self) -> list[int]:
        """Bring the schema up to date, and nothing else (``open`` does it too); the versions
        applied. On PostgreSQL it is safe while other processes start or run."""

    async def ping(self) -> None:
        """Raise ``StoreError`` if the store cannot be reached, ``StoreUnavailable`` while it
        refuses writes (disk full, I/O error, read-only) and a probe write still fails."""

    def write_backlog(self) -> int:
        """Writes queued and not yet committed: how far behind the store is."""

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
        """Lease up to ``limit`` pending runs, or running runs whose lease expired, to this
        owner, and mark them running."""

    async def finish_run(self, ending: RunEnding, now: float) -> RunEnded | None:
        """Write the final status and enqueue the deliveries; None if the run had already ended."""

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        """Hand running runs this owner holds back to the queue (graceful shutdown)."""

    async def request_cancel(self, run_id: str, reason: str, now: float) -> models.Run | None:
        """Record that the run is to end ``interrupted`` with ``reason`` (its
        ``cancel_reason``), announced as ``run.cancel_requested`` to every process; the run as
        it now is, or None if it is unknown or already over."""

    async def renew_run_leases(self, run_ids: Sequence[str], until: float) -> list[str]:
        """Extend to ``until`` the leases this owner still holds on these running runs (one
        statement); the ids renewed. A missing one ended, or was taken over after its lease
        lapsed."""

    async def take_over(self, now: float) -> int:
        """Start serving as ``owner``; how many leases were released. SQLite, one process per
        file: lock the file for this process (a second gateway gets ``StoreError``) and release
        every lease another owner holds, since that owner is a dead predecessor. PostgreSQL:
        nothing, a dead process's leases lapse and others take its work."""

    async def append_events(self, run_id: str, events: Sequence[NewEvent], now: float) -> list[int]:
        """Append to the run's event log in order, in one transaction; their ids."""

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

    async def take_rate_token(self, endpoint_id: str, rate: float, now: float) -> float:
        """0 if a request to the endpoint may go now (it took a token from the endpoint's
        bucket), else the seconds until one may (``outbox.limits.take``). Atomic with N
        writers: every process draws from the one bucket stored with the endpoint."""
        ...

    # deliveries
    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None: ...

    async def claim_deliveries(
        self,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: ClaimPolicy,
        run_id: str | None = None,
    ) -> list[models.Delivery]:
        """Lease up to ``limit`` due deliveries (of one run, if given), fairly across
        destinations, skipping held endpoints.

        In the same transaction each one's try is recorded as started and counted in
        ``attempts`` (so a crash mid-send leaves a record of it), and a try still without
        outcome on a delivery whose lease ran out gets ``ATTEMPT_OUTCOME_UNKNOWN``."""

    async def renew_delivery_leases(self, delivery_ids: Sequence[str], until: float) -> list[str]:
        """Extend to ``until`` the leases this owner still holds on these pending deliveries
        (one statement); the ids renewed."""

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        """Release a claimed delivery unsent, due again at ``until``; uses up no attempt (its
        started try is removed)."""

    async def record_attempt(
        self, delivery: models.Delivery, outcome: AttemptOutcome
    ) -> HealthChange | None:
        """Store the outcome of the try the claim started (``delivery.attempts``), the
        delivery's new state and its endpoint's health, releasing the lease."""

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        """Make a delivery due now, whatever its state (manual retry or replay)."""

    async def replay_deliveries(self, selection: DeliverySelection, now: float) -> int:
        """Make every selected delivery due now; how many."""

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None: ...

    async def list_deliveries(
        self, selection: DeliverySelection, limit: int = 100, after: Position | None = None
    ) -> list[models.Delivery]:
        """Newest first (``created_at``, then ``delivery_id``, both descending); ``after``: the
        last one of the previous page."""

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]: ...

    async def delivery_backlog(self, now: float) -> tuple[int, float | None]:
        """How many deliveries are pending, and since when the oldest due one has been due."""

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery becomes due, so the dispatcher can sleep until then."""


# --- /inspect: read-side queries and bins (gateway/inspect/; migration 0006) --------------------


class InspectStore(Protocol):
    """The verbs the ``/inspect`` pages need, on top of ``Store``."""

    async def list_triggers(
        self, selection: TriggerSelection, limit: int = 50, after: Position | None = None
    ) -> list[models.Trigger]:
        """Newest first (``received_at``, then ``trigger_id``), after ``after`` as
        ``list_deliveries``; ``selection.search`` matches flow, ids, verification and body."""

    async def list_runs(
        self, selection: RunSelection, limit: int = 50, after: Position | None = None
    ) -> list[models.Run]:
        """Newest first (``created_at``, then ``run_id``), after ``after`` as
        ``list_deliveries``, by flow and status; ``selection.search`` matches ids, flow, status."""

    async def inspect_counts(self, since: float) -> InspectCounts:
        """Totals by status, and what happened at or after ``since`` (for rates)."""

    async def create_bin(self, bin: models.Bin) -> models.Bin: ...

    async def get_bin(self, bin_id: str) -> models.Bin | None: ...

    async def list_bins(self) -> list[models.Bin]:
        """Newest first, each with its capture count."""

    async def update_bin(self, bin_id: str, changes: Mapping[str, Any]) -> models.Bin | None:
        """Set ``BIN_SETTABLE`` columns."""

    async def delete_bin(self, bin_id: str) -> bool:
        """The bin and everything it captured."""

    async def capture_request(
        self, capture: models.CapturedRequest, keep: int
    ) -> models.CapturedRequest:
        """Record a request sent to a bin (with its new id); keep only the newest ``keep``."""

    async def list_captures(
        self, bin_id: str | None, search: str | None = None, limit: int = 100
    ) -> list[models.CapturedRequest]:
        """Newest first, of one bin or of all; ``search`` matches method, path, query, body."""

    async def get_capture(self, capture_id: int) -> models.CapturedRequest | None: ...

    async def open_session(self, session_hash: str, expires_at: float, now: float) -> None:
        """Record a logged-in ``/inspect`` session (by a hash of its id, never the id), so
        every process serving the store honours it; sessions expired by ``now`` go."""

    async def session_is_open(self, session_hash: str, now: float) -> bool: ...

    async def close_session(self, session_hash: str) -> None:
        """End the session for every process (logout)."""


@dataclasses.dataclass(frozen=True)
class TriggerSelection:
    flow_id: str | None = None
    search: str | None = None


@dataclasses.dataclass(frozen=True)
class RunSelection:
    flow_id: str | None = None
    status: models.RunStatus | None = None
    search: str | None = None
    trigger_id: str | None = None


@dataclasses.dataclass(frozen=True)
class InspectCounts:
    triggers: int
    triggers_since: int
    rejected_since: int
    runs: Mapping[str, int]
    runs_since: int
    deliveries: Mapping[str, int]
    attempts_since: int
    attempts_ok_since: int


BIN_SETTABLE = ("name", "reply_status", "reply_delay", "verify_with")


# --- relaying: pull endpoints and filters (gateway/outbox/routing.py, gateway/outbox/pull.py) --


class RelayStore(Protocol):
    """The verbs of pull endpoints' consumers and of filtered routes, on top of ``Store``.

    A pull endpoint's deliveries are never claimed by ``claim_deliveries`` (nor counted by
    ``next_due_at``): consumers claim them here, over the API, and acknowledge each try.
    """

    async def claim_pulled(
        self,
        endpoint_id: str,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: ClaimPolicy,
    ) -> list[models.Delivery]:
        """Lease up to ``limit`` due deliveries of one pull endpoint, oldest first, recording
        and counting each one's try as started (as ``claim_deliveries`` does). Consumers
        claiming at once get different deliveries. None while the endpoint is paused, disabled
        or its circuit is open; at most one leased at a time once its failure streak reaches
        ``policy.circuit_failure_threshold``."""

    async def ack_pulled(
        self, delivery_id: str, attempt: int, outcome: AttemptOutcome
    ) -> tuple[models.Delivery, HealthChange | None] | None:
        """Record a consumer's outcome of try ``attempt`` as ``record_attempt`` does, if that
        try is still the delivery's latest and it is pending; the delivery as it is then. A
        repeated acknowledgement of a try already recorded changes nothing; one whose try is
        no longer current raises ``Conflict`` (``stale_ack``). None if the delivery is unknown."""

    async def list_filtered(self, run_id: str) -> list[models.FilteredRoute]:
        """The endpoints whose filter turned the run's event away, as recorded at its end."""


def stale_ack(delivery: models.Delivery, attempt: int) -> str:
    """Why a consumer's acknowledgement of try ``attempt`` no longer counts."""
    if delivery.attempts != attempt:
        return (
            f"try {attempt} of delivery {delivery.delivery_id} is no longer current: its lease "
            f"lapsed and it was claimed again (try {delivery.attempts}), which carries the same "
            "webhook-id"
        )
    return f"delivery {delivery.delivery_id} is {delivery.status.value}: nothing to acknowledge"


# --- retention (gateway/store/retention.py says what expires and what never does) -------------


class PruneStore(Protocol):
    """Deleting what has expired, in batches, on top of ``Store``."""

    async def prune(self, cutoffs: Cutoffs, batch: int) -> Pruned:
        """Delete up to ``batch`` expired rows of each kind, each kind in its own short
        transaction (attempts with their deliveries, a run's events with the run, a thread
        with its runs, events and states); what was deleted. The caller repeats while a kind
        fills its batch (``Pruned.filled``). With N writers, a row is deleted once and a row
        that stops being expired meanwhile (a delivery replayed) is kept."""

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        """What ``prune`` would delete, repeated until nothing is left; deletes nothing."""
