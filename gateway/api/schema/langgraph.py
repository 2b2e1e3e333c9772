"""LangGraph Agent Server's requests and responses, after its own OpenAPI document
(``langgraph-api`` 0.16.7, shipped in ``tests/data``): same names, same fields.

Where hookgate differs on purpose, the field says so: it refuses (422) what the peer would
silently default or fail on later (an unknown ``select`` field, a ``limit`` past 1000, an
``after_seconds`` past a year), and it accepts ``null`` wherever it means "not given".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from gateway.api.schema import (
    MAX_LIMIT,
    MAX_TTL_MINUTES,
    Body,
    Checked,
    Id,
    JsonObject,
    Limit,
    Moment,
    Offset,
    Query,
    Range,
    Response,
    Seconds,
    State,
)
from gateway.runs import crons, sse

SortOrder = Literal["asc", "desc"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
Durability = Literal["sync", "async", "exit"]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
]
RunField = Literal[
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
]
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
]
_MODE = {"type": "string", "enum": list(sse.STREAM_MODES)}
StreamModes = Annotated[
    tuple[str, ...],
    Checked(sse.parse_modes, {"anyOf": [_MODE, {"type": "array", "items": _MODE}]}),
]
Schedule = Annotated[
    str, Checked(crons.check_schedule, {"type": "string", "description": "A cron expression."})
]
Timezone = Annotated[
    str, Checked(crons.check_timezone, {"type": "string", "description": "An IANA time zone name."})
]
Webhook = Annotated[
    str,
    Field(
        min_length=1,
        max_length=65536,
        description="Where the run's result is POSTed, signed (see `webhooks` in this "
        "document). hookgate refuses (422) private, loopback and metadata addresses unless "
        "configured to allow them.",
    ),
]
Select = Field(
    None,
    description="Fields to return. hookgate refuses (422) a name outside the list; "
    "LangGraph's server fails on it later.",
)
Metadata = Annotated[JsonObject | None, Field(description="Matched key by key, literally.")]


# assistants


class AssistantCountRequest(Body):
    metadata: Metadata = None
    graph_id: str | None = None
    name: str | None = None


class AssistantSearchRequest(AssistantCountRequest):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] = "created_at"
    sort_order: SortOrder = "desc"
    select: list[AssistantField] | None = Select


class Assistant(Response):
    assistant_id: str = Field(json_schema_extra={"format": "uuid"})
    graph_id: str
    name: str
    description: str | None = None
    config: JsonObject
    context: JsonObject = {}
    created_at: str
    updated_at: str
    metadata: JsonObject
    version: int


class GraphSchema(Response):
    graph_id: str
    input_schema: JsonObject | None = None
    output_schema: JsonObject | None = None
    state_schema: JsonObject | None = None
    config_schema: JsonObject | None = None
    context_schema: JsonObject | None = None


# threads


class Ttl(Body):
    ttl: Annotated[float, Range(0, MAX_TTL_MINUTES, " minutes")]
    strategy: Literal["delete", "keep_latest"] = "delete"


TtlMinutes = Annotated[float, Range(0, MAX_TTL_MINUTES, " minutes")]


class SuperstepUpdate(Body):
    values: State | None = None
    as_node: str | None = None
    command: JsonObject | None = None


class Superstep(Body):
    updates: list[SuperstepUpdate] | None = None


class ThreadCreate(Body):
    thread_id: Id | None = None
    metadata: JsonObject | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: Ttl | TtlMinutes | None = Field(
        None, description="Minutes, or `{ttl: minutes, strategy}` as the SDK sends it."
    )
    supersteps: list[Superstep] | None = None


class ThreadPatch(Body):
    metadata: JsonObject | None = None
    ttl: Ttl | TtlMinutes | None = None


class ThreadCountRequest(Body):
    ids: list[Id] | None = None
    metadata: Metadata = None
    values: JsonObject | None = None
    status: ThreadStatus | None = None


class ThreadSearchRequest(ThreadCountRequest):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = (
        "updated_at"
    )
    sort_order: SortOrder = "desc"
    select: list[ThreadField] | None = Select
    extract: dict[str, str] | None = Field(None, max_length=10)


class ThreadTtl(Response):
    strategy: str
    ttl_minutes: float
    expires_at: str | None = None


class Thread(Response):
    thread_id: str = Field(json_schema_extra={"format": "uuid"})
    created_at: str
    updated_at: str
    state_updated_at: str | None = None
    metadata: JsonObject
    config: JsonObject = {}
    status: ThreadStatus
    values: JsonObject | list[Any] | None = None
    interrupts: JsonObject = {}
    ttl: ThreadTtl | None = None
    extracted: JsonObject | None = None


class CheckpointConfig(Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: JsonObject | None = None


class ThreadStateUpdate(Body):
    values: State | None = None
    checkpoint: CheckpointConfig | None = None
    checkpoint_id: str | None = None
    as_node: str | None = None


class ThreadStateCheckpointRequest(Body):
    checkpoint: CheckpointConfig | None = None
    subgraphs: bool | None = None


class ThreadStateSearch(Body):
    limit: Annotated[int, Range(1, MAX_LIMIT, integer=True)] = Field(
        10, description="hookgate's default for POST is 10 (LangGraph's: 1)."
    )
    before: CheckpointConfig | str | None = None
    metadata: JsonObject | None = None
    checkpoint: CheckpointConfig | None = None


class HistoryQuery(Query):
    limit: Limit = 1
    before: str | None = None


class ThreadGetQuery(Query):
    include: str | None = Field(None, description="`ttl` adds the thread's TTL.")


class ThreadState(Response):
    values: JsonObject | list[Any]
    next: list[str]
    tasks: list[JsonObject] = []
    checkpoint: JsonObject | None
    metadata: JsonObject | None
    created_at: str | None
    parent_checkpoint: JsonObject | None = None
    interrupts: list[Any] = []
    checkpoint_id: str | None = None
    parent_checkpoint_id: str | None = None


class ThreadStateUpdateResponse(Response):
    checkpoint: JsonObject
    configurable: JsonObject | None = None
    checkpoint_id: str | None = None


# runs


class RunCreateStateless(Body):
    assistant_id: str = Field(description="A graph name or an assistant's UUID.")
    input: Any = None
    command: JsonObject | None = None
    metadata: JsonObject | None = None
    config: JsonObject | None = None
    context: JsonObject | None = None
    checkpoint: JsonObject | None = None
    checkpoint_id: str | None = None
    webhook: Webhook | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamModes | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = Field(
        None, description="hookgate keeps every run's events, so every stream is resumable."
    )
    feedback_keys: list[str] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_completion: Literal["delete", "keep"] = "delete"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    after_seconds: Seconds | None = Field(
        None, description="Up to a year: hookgate refuses (422) a later start."
    )
    checkpoint_during: bool | None = None
    durability: Durability = "async"


RunCreateStateful = RunCreateStateless


class RunsCancel(Body):
    status: Literal["pending", "running", "all"] | None = None
    thread_id: Id | None = None
    run_ids: list[Id] | None = None


class RunListQuery(Query):
    limit: Limit = 10
    offset: Offset = 0
    status: RunStatus | None = None
    select: list[RunField] = Field([], description="Repeat the parameter for each field.")


class CancelQuery(Query):
    wait: bool = False
    action: Literal["interrupt", "rollback"] = "interrupt"


class JoinQuery(Query):
    cancel_on_disconnect: bool = Field(
        False, description="hookgate refuses (422) a value that is not a boolean."
    )


class JoinStreamQuery(JoinQuery):
    stream_mode: list[sse.StreamMode] = Field(
        [], description="Repeated, comma-separated, or a JSON array; the run's own by default."
    )


class ThreadStreamQuery(Query):
    stream_modes: list[Literal["run_modes", "lifecycle", "state_update"]] = Field(
        [], description="Repeated, comma-separated, or a JSON array; `run_modes` by default."
    )


class Run(Response):
    run_id: str = Field(json_schema_extra={"format": "uuid"})
    thread_id: str | None
    assistant_id: str
    created_at: str
    updated_at: str
    status: RunStatus
    metadata: JsonObject
    kwargs: JsonObject
    multitask_strategy: str
    langsmith_session_name: str | None = None
    flow_id: str | None = Field(None, description="hookgate: the flow that ran.")
    attempt: int | None = Field(None, description="hookgate: how many times it was started.")
    run_started_at: str | None = None
    run_ended_at: str | None = None
    values: Any = Field(None, description="hookgate: the run's output.")
    error: Any = Field(None, description="hookgate: the run's error, if it failed.")


# crons


class CronPayload(Body):
    """What each firing's run is made of (LangGraph's ``CronCreate`` run fields)."""

    input: Any = None
    metadata: JsonObject | None = None
    config: JsonObject | None = None
    context: JsonObject | None = None
    webhook: Webhook | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamModes | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Durability | None = None
    multitask_strategy: MultitaskStrategy | None = None


class CronCreate(CronPayload):
    assistant_id: str = Field(description="A graph name or an assistant's UUID.")
    schedule: Schedule
    timezone: Timezone | None = None
    end_time: Moment | None = None
    on_run_completed: Literal["delete", "keep"] = "delete"
    enabled: bool = True


class CronPatch(CronPayload):
    schedule: Schedule | None = None
    timezone: Timezone | None = None
    end_time: Moment | None = Field(None, description="null: no end.")
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None


class CronCountRequest(Body):
    assistant_id: str | None = None
    thread_id: Id | None = None
    enabled: bool | None = None
    metadata: Metadata = None


class CronSearch(CronCountRequest):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal[
        "cron_id",
        "assistant_id",
        "thread_id",
        "next_run_date",
        "end_time",
        "created_at",
        "updated_at",
    ] = "created_at"
    sort_order: SortOrder = "desc"
    select: list[CronField] | None = Select


class Cron(Response):
    cron_id: str = Field(json_schema_extra={"format": "uuid"})
    assistant_id: str | None
    thread_id: str | None
    user_id: str | None = None
    end_time: str | None
    schedule: str
    timezone: str | None = None
    payload: JsonObject
    next_run_date: str | None = None
    metadata: JsonObject = {}
    on_run_completed: str | None = None
    enabled: bool
    created_at: str
    updated_at: str


# meta


class OkQuery(Query):
    check_db: bool = False


class Ok(Response):
    ok: bool


class Info(Response):
    version: str
    langgraph_py_version: str | None = None
    flags: JsonObject
    host: JsonObject | None = None
