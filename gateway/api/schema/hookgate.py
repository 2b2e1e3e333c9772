"""hookgate's own API: subscriber endpoints, deliveries (with pull and ack), runs, the
callback secret, health; and the payloads hookgate POSTs to subscribers (``webhooks:``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from gateway import models
from gateway.api.schema import (
    MAX_DELAY_SECONDS,
    Body,
    Checked,
    Closed,
    Cursor,
    JsonObject,
    Limit,
    Moment,
    Query,
    Range,
    Response,
)
from gateway.api.schema.langgraph import Run
from gateway.outbox import pull as pulls
from gateway.outbox import routing
from gateway.outbox.delivery import MAX_TIMEOUT, check_timeout

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]
EventType = Literal[
    "run.success",
    "run.error",
    "run.timeout",
    "run.interrupted",
    "endpoint.disabled",
    "endpoint.circuit_opened",
    "endpoint.recovered",
]
assert set(EventType.__args__) == set(models.EVENT_TYPES)  # type: ignore[attr-defined]
Transform = Annotated[
    Any,
    Checked(
        lambda value: value,  # its rules need a parser: gateway.outbox.endpoint_fields
        {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
                {"type": "null"},
            ]
        },
    ),
]
Delay = Annotated[float, Range(0, MAX_DELAY_SECONDS, " seconds")]


def _timeout(value: Any) -> float:
    """A number within ``check_timeout``'s rule, the one ``delivery_timeout`` follows too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    check_timeout(value)
    return float(value)


Timeout = Annotated[
    float, Checked(_timeout, {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT})
]


# endpoints


class EndpointPatch(Closed):
    """The writable fields of an endpoint; absent ones are left as they are. Their types and
    bounds are checked here; what needs the configuration, the registered flows or a parser
    (URLs, secrets, flow ids, expressions) by ``gateway.outbox.endpoint_fields``."""

    url: str | None = Field(
        None,
        description="http(s) URL. Private, loopback and metadata addresses are refused (422) "
        "unless configured to allow them.",
    )
    secret: str | None = Field(None, description="`whsec_` + base64, as Standard Webhooks.")
    flow_ids: list[str] | None = Field(None, description="Registered flows only; all when empty.")
    event_types: list[EventType] | None = None
    description: str | None = None
    enabled: bool | None = None
    timeout: Timeout | None = None
    max_concurrency: Annotated[int, Range(1, 2**31 - 1, integer=True)] | None = None
    rate_limit: Annotated[float, Range(0.001, 1e9, " per second")] | None = None
    retry_schedule: list[Delay] | None = Field(None, min_length=1)
    mode: routing.Mode | None = Field(
        None, description="Set when creating: a change is refused (422)."
    )
    payload: routing.Payload | None = None
    forward_headers: list[str] | None = None
    filter: str | None = Field(None, description="A JMESPath expression over the payload.")
    transform: Transform = Field(
        None,
        description='A JMESPath string, `{"jmespath": "…"}` or `{"jinja": "<template producing '
        'JSON>"}`; null removes it.',
    )


class EndpointCreate(EndpointPatch):
    mode: routing.Mode = Field(
        "push", description="pull: no URL; consumers fetch deliveries (`hookgate listen`)."
    )


class Endpoint(Response):
    endpoint_id: str
    url: str | None
    secret: str = Field(description="Shown whole only on create and rotate; masked elsewhere.")
    flow_ids: list[str]
    event_types: list[str]
    description: str | None = None
    enabled: bool
    state: str
    disabled_reason: str | None = None
    retry_schedule: list[float] | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    rate_limit: float | None = None
    consecutive_failures: int
    failing_since: str | None = None
    circuit_open_until: str | None = None
    previous_secret_expires_at: str | None = None
    created_at: str
    updated_at: str
    mode: str
    payload: str
    forward_headers: list[str] | None = None
    filter: str | None = None
    transform: dict[str, str] | None = None


class RotateSecret(Closed):
    secret: str | None = Field(None, description="The new secret; generated when absent.")


class Recover(Closed):
    status: list[DeliveryStatus] | None = Field(None, description="Default: failed.")
    since: Moment | None = None
    until: Moment | None = None


class EndpointReplayed(Response):
    endpoint_id: str
    replayed: int


class RunReplayed(Response):
    run_id: str
    replayed: int


# deliveries


class DeliveriesQuery(Query):
    status: DeliveryStatus | None = None
    run_id: str | None = None
    endpoint_id: str | None = None
    limit: Limit = 100
    cursor: Cursor | None = None


class Delivery(Response):
    delivery_id: str
    run_id: str | None
    endpoint_id: str | None
    url: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str


class Attempt(Response):
    attempt: int
    started_at: str | None
    duration_ms: float
    status_code: int | None = None
    response_headers: dict[str, str]
    response_body: str
    error: str | None = None


class DeliveryDetail(Delivery):
    payload: Any = Field(description="The body sent: JSON, or text for a raw relay.")
    headers: dict[str, str] | None = None
    attempt_log: list[Attempt]


# pull endpoints


class PullQuery(Query):
    limit: Annotated[int, Range(1, pulls.MAX_LIMIT, integer=True)] = 10
    wait: Annotated[float, Range(0, pulls.MAX_WAIT, " seconds")] = Field(
        0.0, description="Long-poll: how long to wait for a first delivery."
    )
    lease: Annotated[float, Range(pulls.MIN_LEASE, pulls.MAX_LEASE, " seconds")] = Field(
        60.0, description="How long each pulled delivery is held for this consumer."
    )


class Pulled(Response):
    delivery_id: str
    attempt: int
    event_type: str
    run_id: str | None
    endpoint_id: str | None
    created_at: str
    lease_expires_at: str
    headers: dict[str, str]
    body: str | None = Field(None, description="The body to POST, when it is UTF-8 text.")
    body_base64: str | None = Field(None, description="Otherwise, the body in base64.")


class PullResponse(Response):
    endpoint_state: str
    deliveries: list[Pulled]


class Ack(Body):
    """The receiver's answer to one try (``status_code``), or why there was none (``error``)."""

    attempt: Annotated[int, Range(1, 2**31 - 1, integer=True)] = Field(
        description="The try being acknowledged, from the pull."
    )
    status_code: Annotated[int, Range(100, 599, integer=True)] | None = None
    error: str | None = None
    duration_ms: Annotated[float, Range(0, 86_400_000)] | None = None
    response_headers: dict[str, str] | None = Field(None, max_length=100)
    response_body: str | None = None
    timed_out: bool | None = None


# runs, the callback secret, health


class RunView(Run):
    """A run in LangGraph's shape, with hookgate's fields."""


class WebhookSecretQuery(Query):
    url: str = Field(description="The receiver's http(s) URL, as given in `webhook=`.")


class WebhookSecret(Response):
    origin: str
    secret: str


class Health(Response):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


# what hookgate sends


class RunCallback(Response):
    """POSTed to a run's ``webhook`` and to endpoints subscribed to ``run.*`` when a run
    ends: LangGraph's webhook payload plus ``flow_id``. Signed with Standard Webhooks
    headers; the URL also carries ``hookgate_token`` query tokens."""

    run_id: str
    thread_id: str | None
    assistant_id: str
    metadata: JsonObject
    status: str
    kwargs: JsonObject
    multitask_strategy: str
    created_at: str
    updated_at: str
    langsmith_session_name: str | None = None
    run_started_at: str | None = None
    run_ended_at: str | None = None
    webhook_sent_at: str
    values: Any = None
    error: Any = None
    flow_id: str


class EndpointEventData(Response):
    endpoint_id: str
    url: str
    reason: str | None = None


class EndpointEvent(Response):
    """POSTed to endpoints subscribed to ``endpoint.*`` when another endpoint changes state."""

    type: Literal["endpoint.disabled", "endpoint.circuit_opened", "endpoint.recovered"]
    timestamp: str
    data: EndpointEventData
