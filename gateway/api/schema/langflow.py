"""Langflow's webhook, run and build API, after ``langflow-base``'s models
(``SimplifiedAPIRequest``, ``InputValueRequest``, ``RunResponse``, ``FlowDataRequest``).

Where hookgate differs on purpose: Langflow silently falls back to all defaults when a flat
``/run`` body does not validate; hookgate answers 422 naming the field. The webhook answer
adds ``run_id`` (and a ``Location`` header) so the caller can follow its run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from gateway.api.schema import (
    LATEST_TIMESTAMP_MS,
    Body,
    JsonObject,
    Query,
    Range,
    Response,
    Wording,
)

WORDING: Wording = {
    "dict_type": "expected dict, got {kind}",
    "model_type": "expected dict, got {kind}",
    "literal_type": "expected str, got {kind}",
}
"""The Langflow API's refusals name Python's types, as they always have."""
InputType = Literal["chat", "text", "any"]
OutputType = Literal["chat", "text", "any", "debug"]
EventDelivery = Literal["streaming", "polling", "direct"]


class SimplifiedAPIRequest(Body):
    """``POST /api/v1/run/{flow}``; also accepted embedded as ``{"input_request": {…}}``.
    hookgate refuses (422) what Langflow would silently replace by its defaults."""

    input_value: str | None = None
    input_type: InputType = "chat"
    output_type: OutputType = "chat"
    output_component: str | None = ""
    tweaks: dict[str, JsonObject | Any] | None = Field(
        None, description="`{<component id or display name>: {field: value}}` or `{field: value}`."
    )
    session_id: str | None = None
    user_id: str | None = None
    webhook: str | None = Field(
        None, description="hookgate: where the run's result is POSTed, signed (see `webhooks`)."
    )


class InputValueRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    components: list[str] | None = []
    input_value: str | None = None
    session: str | None = None
    type: InputType | None = "any"
    client_request_time: (
        Annotated[int, Range(0, LATEST_TIMESTAMP_MS, " (epoch milliseconds)", integer=True)] | None
    ) = None


class RunAdvancedRequest(Body):
    inputs: list[InputValueRequest] | None = None
    outputs: list[str] | None = None
    tweaks: JsonObject | None = None
    stream: bool | None = None
    session_id: str | None = None
    webhook: str | None = None


class FlowDataRequest(Body):
    nodes: list[JsonObject] | None = None
    edges: list[JsonObject] | None = None
    viewport: JsonObject | None = None


class BuildRequest(Body):
    inputs: InputValueRequest | None = None
    data: FlowDataRequest | None = None
    files: list[str] | None = None
    webhook: str | None = None


class RunQuery(Query):
    stream: bool = Field(False, description="Stream the run's events (`text/event-stream`).")
    webhook: str | None = Field(None, description="hookgate: a per-run callback URL.")


class BuildQuery(Query):
    event_delivery: EventDelivery = "polling"
    log_builds: bool = True
    start_component_id: str | None = None
    stop_component_id: str | None = None


class BuildEventsQuery(Query):
    event_delivery: EventDelivery = "streaming"
    stream: bool | None = Field(
        None, description="Langflow <= 1.3: false answers one event per call as JSON text."
    )


class WebhookQuery(Query):
    webhook: str | None = Field(None, description="hookgate: a per-run callback URL.")
    token: str | None = Field(
        None,
        description="A signed trigger URL's token (`hookgate token`): stands in for the API "
        "key on this route only.",
    )


class WebhookAccepted(Response):
    message: str
    status: str
    run_id: str = Field(description="hookgate: the run started; follow it at `Location`.")


class ResultData(Response):
    results: Any = None
    artifacts: Any = None
    outputs: Any = None
    logs: Any = None
    messages: Any = None
    timedelta: float | None = None
    duration: Any = None
    component_display_name: str | None = None
    component_id: str | None = None
    used_frozen_result: bool | None = None


class RunOutputs(Response):
    inputs: JsonObject = {}
    outputs: list[ResultData | None] = []


class RunResponse(Response):
    session_id: str | None = None
    outputs: list[RunOutputs] | None = []


class JobStarted(Response):
    job_id: str


class BuildCancelled(Response):
    success: bool
    message: str


class LegacyEvent(Response):
    event: str | None = Field(description="One event as JSON text; null after the last.")
