"""Which models each handler reads and answers with: the registry ``/openapi.json`` is made
from, beside the route table (``gateway.api.setup_routes``). A route whose handler is missing
here fails ``tests/integration/test_openapi.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.api import (
    callback_secret,
    endpoints,
    health,
    langflow,
    langgraph,
    langgraph_crons,
    langgraph_runs,
    pull,
    runs,
)
from gateway.api.schema import ErrorBody
from gateway.api.schema import hookgate as hg
from gateway.api.schema import langflow as lf
from gateway.api.schema import langgraph as lg

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
HTML = "text/html"
PROMETHEUS = "text/plain"


@dataclass(frozen=True)
class Selected:
    """A list of ``model`` cut to the fields a ``select`` names: no field is required."""

    model: type[BaseModel]


@dataclass(frozen=True)
class Answer:
    """One documented success: its status, media type and body model (None: no body)."""

    status: int = 200
    model: Any = None
    media: str = JSON
    description: str = ""


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: tuple[Answer, ...] = (Answer(),)
    body: Any = None
    body_required: bool = False
    body_media: str = JSON
    query: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""
    public: bool = False
    trigger_token: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def ok(model: Any = None, status: int = 200, media: str = JSON, description: str = "") -> Answer:
    return Answer(status, model, media, description)


NO_CONTENT = Answer(204, None, JSON, "Done; no body.")
LAST_EVENT_ID = (
    (
        "Last-Event-ID",
        "Resume after this event id (`-` for the start); hookgate can resume any run.",
    ),
)
SSE_STREAM = Answer(
    200,
    None,
    SSE,
    "Server-sent events as the Agent Server writes them (`event:`, `data:`, `id:`), with a "
    "heartbeat comment every few seconds.",
)
FINAL = Answer(
    200,
    None,
    JSON,
    "The run's final values, after newlines sent as a keep-alive while it runs.",
)
RUN_ERRORS = (400, 404, 409)
TAG_LG = "LangGraph"
TAG_LF = "Langflow"
TAG_HOOKS = "Endpoints and deliveries"
TAG_RUNS = "Runs"
TAG_OPS = "Operations"


def run_creation(summary: str, answer: Answer, body: Any = lg.RunCreateStateful) -> Operation:
    """A LangGraph route that starts a run: a required body, and the run's refusals."""
    return Operation(summary, TAG_LG, (answer,), body=body, body_required=True, errors=RUN_ERRORS)


OPERATIONS: dict[tuple[str, Handler], Operation] = {
    # operations
    ("GET", health.healthz): Operation(
        "Can the store be read and written?",
        TAG_OPS,
        (ok(hg.Health), ok(hg.Health, 503, description="The store is unreachable.")),
        public=True,
    ),
    ("GET", health.metrics): Operation(
        "Prometheus metrics", TAG_OPS, (ok(media=PROMETHEUS, description="Exposition format."),)
    ),
    # Langflow
    ("POST", langflow.webhook): Operation(
        "Trigger a flow",
        TAG_LF,
        (ok(lf.WebhookAccepted, 202, description="Stored with its run before this answer."),),
        body=Any,
        body_required=True,
        body_media="*/*",
        query=lf.WebhookQuery,
        errors=(400, 401),
        trigger_token=True,
        description="Any body: JSON is the flow's input as is, anything else becomes "
        '`{"payload": "<text>"}`. Idempotent on `Idempotency-Key`, `webhook-id`, `svix-id` or '
        "`X-GitHub-Delivery`. A flow configured with `verify` answers 401 to a bad signature.",
    ),
    ("POST", langflow.run_flow): Operation(
        "Run a flow and answer its result",
        TAG_LF,
        (
            ok(lf.RunResponse),
            ok(None, 200, SSE, "`?stream=true`: JSON objects separated by a blank line."),
            ok(ErrorBody, 500, description="The flow failed; `detail` is JSON text."),
        ),
        body=lf.SimplifiedAPIRequest,
        query=lf.RunQuery,
    ),
    ("POST", langflow.run_advanced): Operation(
        "Run a flow once per input",
        TAG_LF,
        (ok(lf.RunResponse), ok(ErrorBody, 500, description="A run failed.")),
        body=lf.RunAdvancedRequest,
    ),
    ("POST", langflow.build_flow): Operation(
        "Start a build job",
        TAG_LF,
        (ok(lf.JobStarted), ok(None, 200, NDJSON, "`event_delivery=direct`: the events.")),
        body=lf.BuildRequest,
        query=lf.BuildQuery,
    ),
    ("GET", langflow.build_events): Operation(
        "A build job's events",
        TAG_LF,
        (
            ok(None, 200, NDJSON, "Streamed, or those not yet polled."),
            ok(lf.LegacyEvent, 200, description="`stream=false`: one event per call."),
        ),
        query=lf.BuildEventsQuery,
    ),
    ("POST", langflow.build_cancel): Operation(
        "Cancel a build job", TAG_LF, (ok(lf.BuildCancelled),)
    ),
    # hookgate: runs, endpoints, deliveries
    ("GET", runs.get_run): Operation("A run, with its output", TAG_RUNS, (ok(hg.RunView),)),
    ("POST", endpoints.redeliver_run): Operation(
        "Send a run's deliveries again", TAG_RUNS, (ok(hg.RunReplayed, 202),)
    ),
    ("POST", endpoints.create_endpoint): Operation(
        "Register a subscriber endpoint",
        TAG_HOOKS,
        (ok(hg.Endpoint, 201),),
        body=hg.EndpointCreate,
        body_required=True,
    ),
    ("GET", endpoints.list_endpoints): Operation(
        "List endpoints", TAG_HOOKS, (ok(list[hg.Endpoint]),)
    ),
    ("GET", endpoints.get_endpoint): Operation("An endpoint", TAG_HOOKS, (ok(hg.Endpoint),)),
    ("PATCH", endpoints.update_endpoint): Operation(
        "Change an endpoint", TAG_HOOKS, (ok(hg.Endpoint),), body=hg.EndpointPatch
    ),
    ("DELETE", endpoints.delete_endpoint): Operation(
        "Delete an endpoint", TAG_HOOKS, (NO_CONTENT,)
    ),
    ("POST", endpoints.pause_endpoint): Operation(
        "Pause an endpoint (its deliveries wait)", TAG_HOOKS, (ok(hg.Endpoint),)
    ),
    ("POST", endpoints.resume_endpoint): Operation(
        "Resume an endpoint", TAG_HOOKS, (ok(hg.Endpoint),)
    ),
    ("POST", endpoints.rotate_secret): Operation(
        "Rotate an endpoint's secret (the old one signs too for a while)",
        TAG_HOOKS,
        (ok(hg.Endpoint),),
        body=hg.RotateSecret,
    ),
    ("POST", endpoints.recover_endpoint): Operation(
        "Replay an endpoint's deliveries in a time range",
        TAG_HOOKS,
        (ok(hg.EndpointReplayed, 202),),
        body=hg.Recover,
    ),
    ("POST", pull.pull): Operation(
        "Pull due deliveries (long-poll)",
        TAG_HOOKS,
        (ok(hg.PullResponse),),
        query=hg.PullQuery,
        errors=(409,),
    ),
    ("GET", callback_secret.webhook_secret): Operation(
        "The secret a per-run webhook receiver verifies with",
        TAG_HOOKS,
        (ok(hg.WebhookSecret),),
        query=hg.WebhookSecretQuery,
    ),
    ("GET", endpoints.list_deliveries): Operation(
        "List deliveries, newest first",
        TAG_HOOKS,
        (ok(list[hg.Delivery]),),
        query=hg.DeliveriesQuery,
        description='Pages by cursor: a full page answers with a `Link: <…>; rel="next"` '
        "header, this URL with a `cursor` after its last delivery. Following it gives the next "
        "`limit` older deliveries with no gap or repeat, however many arrive meanwhile; a page "
        "without the header is the last. A malformed `cursor` is 422.",
    ),
    ("GET", endpoints.get_delivery): Operation(
        "A delivery with its attempts", TAG_HOOKS, (ok(hg.DeliveryDetail),)
    ),
    ("POST", endpoints.retry_delivery): Operation(
        "Send a delivery again now", TAG_HOOKS, (ok(hg.Delivery, 202),)
    ),
    ("POST", pull.ack): Operation(
        "Acknowledge a pulled delivery",
        TAG_HOOKS,
        (ok(hg.Delivery),),
        body=hg.Ack,
        body_required=True,
        errors=(409,),
    ),
    # LangGraph: meta and assistants
    ("GET", langgraph.ok): Operation("Health check", TAG_LG, (ok(lg.Ok),), query=lg.OkQuery),
    ("GET", langgraph.info): Operation("Server information", TAG_LG, (ok(lg.Info),)),
    ("POST", langgraph.search_assistants): Operation(
        "Search assistants (one per flow)",
        TAG_LG,
        (ok(Selected(lg.Assistant)),),
        body=lg.AssistantSearchRequest,
    ),
    ("POST", langgraph.count_assistants): Operation(
        "Count assistants", TAG_LG, (ok(int),), body=lg.AssistantCountRequest
    ),
    ("GET", langgraph.get_assistant): Operation("An assistant", TAG_LG, (ok(lg.Assistant),)),
    ("GET", langgraph.get_graph): Operation("An assistant's graph", TAG_LG, (ok(dict[str, Any]),)),
    ("GET", langgraph.get_schemas): Operation(
        "An assistant's schemas", TAG_LG, (ok(lg.GraphSchema),)
    ),
    ("GET", langgraph.get_subgraphs): Operation(
        "An assistant's subgraphs", TAG_LG, (ok(dict[str, Any]),)
    ),
    ("POST", langgraph.get_versions): Operation(
        "An assistant's versions", TAG_LG, (ok(list[dict[str, Any]]),)
    ),
    # threads
    ("POST", langgraph.create_thread): Operation(
        "Create a thread", TAG_LG, (ok(lg.Thread),), body=lg.ThreadCreate, errors=(409,)
    ),
    ("POST", langgraph.search_threads): Operation(
        "Search threads", TAG_LG, (ok(Selected(lg.Thread)),), body=lg.ThreadSearchRequest
    ),
    ("POST", langgraph.count_threads): Operation(
        "Count threads", TAG_LG, (ok(int),), body=lg.ThreadCountRequest
    ),
    ("GET", langgraph.get_thread): Operation(
        "A thread", TAG_LG, (ok(lg.Thread),), query=lg.ThreadGetQuery
    ),
    ("PATCH", langgraph.update_thread): Operation(
        "Change a thread's metadata or TTL",
        TAG_LG,
        (ok(lg.Thread), Answer(204, None, JSON, "With `Prefer: return=minimal`.")),
        body=lg.ThreadPatch,
    ),
    ("DELETE", langgraph.delete_thread): Operation(
        "Delete a thread (its runs are cancelled)", TAG_LG, (NO_CONTENT,)
    ),
    ("POST", langgraph.copy_thread): Operation("Copy a thread", TAG_LG, (ok(lg.Thread),)),
    ("GET", langgraph.get_state): Operation(
        "A thread's current state", TAG_LG, (ok(lg.ThreadState),)
    ),
    ("POST", langgraph.update_state): Operation(
        "Add a state to a thread",
        TAG_LG,
        (ok(lg.ThreadStateUpdateResponse),),
        body=lg.ThreadStateUpdate,
        errors=(400,),
    ),
    ("POST", langgraph.get_state_at): Operation(
        "A thread's state at a checkpoint",
        TAG_LG,
        (ok(lg.ThreadState),),
        body=lg.ThreadStateCheckpointRequest,
    ),
    ("GET", langgraph.get_state_at): Operation(
        "A thread's state at a checkpoint", TAG_LG, (ok(lg.ThreadState),)
    ),
    ("POST", langgraph.history): Operation(
        "A thread's states, newest first",
        TAG_LG,
        (ok(list[lg.ThreadState]),),
        body=lg.ThreadStateSearch,
    ),
    ("GET", langgraph.history): Operation(
        "A thread's states, newest first",
        TAG_LG,
        (ok(list[lg.ThreadState]),),
        query=lg.HistoryQuery,
    ),
    # runs
    ("POST", langgraph_runs.create_run): run_creation("Create a run", ok(lg.Run)),
    ("POST", langgraph_runs.stream_run): run_creation(
        "Create a run and stream its events", SSE_STREAM
    ),
    ("POST", langgraph_runs.wait_run): run_creation("Create a run and wait for its result", FINAL),
    ("POST", langgraph_runs.create_batch): run_creation(
        "Create stateless runs", ok(list[lg.Run]), list[lg.RunCreateStateless]
    ),
    ("POST", langgraph_runs.cancel_many): Operation(
        "Cancel runs", TAG_LG, (NO_CONTENT,), body=lg.RunsCancel, query=lg.CancelQuery
    ),
    ("GET", langgraph_runs.list_runs): Operation(
        "A thread's runs", TAG_LG, (ok(Selected(lg.Run)),), query=lg.RunListQuery
    ),
    ("GET", langgraph_runs.get_run): Operation("A run", TAG_LG, (ok(lg.Run),)),
    ("DELETE", langgraph_runs.delete_run): Operation("Delete a run", TAG_LG, (NO_CONTENT,)),
    ("POST", langgraph_runs.cancel_run): Operation(
        "Cancel a run",
        TAG_LG,
        (Answer(202, None, JSON, "Cancelling."), FINAL),
        query=lg.CancelQuery,
    ),
    ("GET", langgraph_runs.join_run): Operation(
        "Wait for a run's result", TAG_LG, (FINAL,), query=lg.JoinQuery
    ),
    ("GET", langgraph_runs.join_stream): Operation(
        "Stream a run's events",
        TAG_LG,
        (SSE_STREAM,),
        query=lg.JoinStreamQuery,
        headers=LAST_EVENT_ID,
    ),
    ("GET", langgraph_runs.thread_stream): Operation(
        "Stream every run of a thread",
        TAG_LG,
        (SSE_STREAM,),
        query=lg.ThreadStreamQuery,
        headers=LAST_EVENT_ID,
    ),
    # crons
    ("POST", langgraph_crons.create_cron): Operation(
        "Create a cron", TAG_LG, (ok(lg.Cron),), body=lg.CronCreate, body_required=True
    ),
    ("POST", langgraph_crons.search_crons): Operation(
        "Search crons", TAG_LG, (ok(Selected(lg.Cron)),), body=lg.CronSearch
    ),
    ("POST", langgraph_crons.count_crons): Operation(
        "Count crons", TAG_LG, (ok(int),), body=lg.CronCountRequest
    ),
    ("GET", langgraph_crons.get_cron): Operation("A cron", TAG_LG, (ok(lg.Cron),)),
    ("PATCH", langgraph_crons.update_cron): Operation(
        "Change a cron", TAG_LG, (ok(lg.Cron),), body=lg.CronPatch, errors=(400,)
    ),
    ("DELETE", langgraph_crons.delete_cron): Operation("Delete a cron", TAG_LG, (NO_CONTENT,)),
}
