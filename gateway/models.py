"""The records that cross process crashes: triggers, runs, events, endpoints, deliveries, attempts."""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import threading
import time
import uuid
from typing import Any

# LangGraph's NAMESPACE_GRAPH: a graph's system assistant id is uuid5(NAMESPACE_GRAPH, graph_id).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


_entropy = bytearray()
_entropy_lock = threading.Lock()


def _random_bits80() -> int:
    """80 bits from the OS's CSPRNG, read 4 KiB at a time: one system call per 400 ids."""
    with _entropy_lock:
        if len(_entropy) < 10:
            _entropy.extend(os.urandom(4096))
        chunk = bytes(_entropy[:10])
        del _entropy[:10]
    return int.from_bytes(chunk)


def new_id() -> str:
    """A UUIDv7 string: time-ordered like LangGraph's ids, so indexes stay append-mostly."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | _random_bits80()
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


@functools.lru_cache(maxsize=1024)
def assistant_id(flow_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE_GRAPH, flow_id))


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


FINAL_RUN_STATUSES = tuple(status for status in RunStatus if status.is_final)
RUN_EVENT_TYPES = tuple(f"run.{status}" for status in FINAL_RUN_STATUSES)
ENDPOINT_EVENT_TYPES = ("endpoint.disabled", "endpoint.circuit_opened", "endpoint.recovered")
EVENT_TYPES = RUN_EVENT_TYPES + ENDPOINT_EVENT_TYPES


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


DEFAULT_DEDUP_WINDOW = 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class Trigger:
    """An inbound request exactly as received (secret headers masked).

    ``verification`` is ``"none"`` (the flow asks for no signature), ``"verified"`` or
    ``"rejected: <reason>"`` (stored for inspection, with no run). ``dedup_window`` is how far
    back (seconds of ``received_at``) an earlier trigger with the same idempotency key counts as
    the same delivery; the store uses it when writing and does not keep it.
    """

    trigger_id: str
    flow_id: str
    received_at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    content_type: str
    source: str
    idempotency_key: str | None = None
    run_id: str | None = None
    verification: str = "none"
    dedup_window: float = DEFAULT_DEDUP_WINDOW

    @property
    def rejected(self) -> bool:
        return self.verification.startswith("rejected")


@dataclasses.dataclass(frozen=True)
class Run:
    run_id: str
    flow_id: str
    status: RunStatus
    input: Any
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    thread_id: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    attempt: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    trigger_id: str | None = None
    cancel_reason: str | None = None
    """Set when a cancel was requested (``interrupted``, ``rolled back``, …): whichever process
    runs the run, now or after claiming it, ends it ``interrupted`` with this reason."""

    @property
    def assistant_id(self) -> str:
        return assistant_id(self.flow_id)

    @property
    def webhook(self) -> str | None:
        url = self.kwargs.get("webhook")
        return url if isinstance(url, str) and url else None


@dataclasses.dataclass(frozen=True)
class Event:
    id: int
    run_id: str
    event: str
    data: Any
    created_at: float


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A registered subscriber: where completions go, signed with its own secret.

    ``enabled`` is the operator's switch (pause/resume); ``disabled_reason`` is set when the
    gateway itself stopped sending (410 Gone, failing for too long). Either way its
    deliveries are kept and go out once it is resumed.

    Relaying (``gateway/outbox/routing.py``): ``payload`` is ``"run"`` (the run object) or
    ``"raw"`` (the trigger's body and ``Content-Type``, with the sender's headers named in
    ``forward_headers``, None meaning the default event headers); ``filter`` is a JMESPath
    expression choosing the triggers it receives; ``transform`` reshapes the JSON before
    signing, in ``transform_language`` (``"jmespath"`` or ``"jinja"``). ``mode`` ``"pull"``
    keeps deliveries for consumers (``hookgate listen``) instead of POSTing them to ``url``.
    """

    endpoint_id: str
    url: str
    secret: str
    created_at: float
    updated_at: float
    flow_ids: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    retry_schedule: tuple[float, ...] | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    rate_limit: float | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: float | None = None
    consecutive_failures: int = 0
    failing_since: float | None = None
    circuit_open_until: float | None = None
    mode: str = "push"
    payload: str = "run"
    forward_headers: tuple[str, ...] | None = None
    filter: str | None = None
    transform: str | None = None
    transform_language: str = "jmespath"

    @property
    def pulled(self) -> bool:
        """A pull endpoint keeps its deliveries for consumers (``hookgate listen``); the
        dispatcher never POSTs them."""
        return self.mode == "pull"

    def wants(self, flow_id: str | None, event_type: str) -> bool:
        """Does this endpoint subscribe to this event? (Paused ones still collect theirs.)"""
        return (not self.flow_ids or flow_id is None or flow_id in self.flow_ids) and (
            not self.event_types or event_type in self.event_types
        )

    def state(self, now: float) -> str:
        if self.disabled_reason:
            return "disabled"
        if not self.enabled:
            return "paused"
        if self.circuit_open_until is not None and self.circuit_open_until > now:
            return "circuit_open"
        return "active"

    def signing_secrets(self, now: float) -> tuple[str, ...]:
        """The current secret, plus the previous one while a rotation's overlap lasts."""
        if self.previous_secret and (self.previous_secret_expires_at or 0) > now:
            return (self.secret, self.previous_secret)
        return (self.secret,)


@dataclasses.dataclass(frozen=True)
class NewDelivery:
    """A delivery to enqueue: one destination for one run ending."""

    delivery_id: str
    url: str
    event_type: str
    payload: bytes
    endpoint_id: str | None = None
    origin_at: float | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    """Sent with the payload: a raw relay's ``Content-Type`` and the sender's forwarded headers."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One outbox row. ``delivery_id`` is the ``webhook-id`` receivers de-duplicate on."""

    delivery_id: str
    run_id: str | None
    url: str
    event_type: str
    payload: bytes
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    created_at: float
    updated_at: float
    endpoint_id: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    origin_at: float | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FilteredRoute:
    """An endpoint that wanted a run's event but whose ``filter`` did not match: no delivery,
    kept so that ``/inspect`` can show the trigger as filtered there, and why."""

    run_id: str
    endpoint_id: str
    event_type: str
    reason: str
    created_at: float


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    """What one HTTP try produced: a response or a network error."""

    started_at: float
    duration_ms: float
    status_code: int | None = None
    response_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    response_body: bytes = b""
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclasses.dataclass(frozen=True)
class Attempt:
    attempt_id: int
    delivery_id: str
    attempt: int
    result: AttemptResult


# LangGraph's threads and crons, and /inspect's bins (their verbs: store.base's ThreadStore
# and InspectStore).


@dataclasses.dataclass(frozen=True)
class Thread:
    thread_id: str
    metadata: dict[str, Any]
    config: dict[str, Any]
    created_at: float
    updated_at: float
    status: str = "idle"
    ttl: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One state of a thread: a run's ``values`` event, a run's output, or a manual update."""

    checkpoint_id: str
    thread_id: str
    values: Any
    created_at: float
    source: str
    run_id: str | None = None
    as_node: str | None = None
    order: int = 0


@dataclasses.dataclass(frozen=True)
class Cron:
    cron_id: str
    flow_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    on_run_completed: str | None
    enabled: bool
    end_time: float | None
    next_run_date: float
    created_at: float
    updated_at: float
    user_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Bin:
    """A capture URL (``/inspect/bins/<bin_id>``) and how it answers."""

    bin_id: str
    name: str
    created_at: float
    reply_status: int = 200
    reply_delay: float = 0.0
    verify_with: str = "auto"  # 'auto', 'signing' or 'endpoint:<id>': never the secret itself
    captures: int = 0


@dataclasses.dataclass(frozen=True)
class CapturedRequest:
    """A request a bin received, as received (headers with secrets masked)."""

    bin_id: str
    received_at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    content_type: str
    source: str
    capture_id: int = 0
