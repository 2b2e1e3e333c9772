"""LangGraph Agent Server's surface: meta, assistants and threads (runs: ``langgraph_runs``,
crons: ``langgraph_crons``). The official ``langgraph-sdk`` client works against it unchanged.

Adapters only: parse and validate as the peer does (same status codes, ``{"detail": …}``),
call ``gateway.runs.threads``, shape the answer. Nothing is stored for a refused request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib import metadata as package_metadata
from typing import Any

from aiohttp import web

from gateway import errors, keys, models
from gateway.api import schema
from gateway.api.schema import langgraph as models_lg
from gateway.clock import isoformat
from gateway.flows import Flow
from gateway.runs import threads as lg
from gateway.store import thread_store


def setup(app: web.Application) -> None:
    """The LangGraph surface's state: its threads service and the cron scheduler."""
    app.cleanup_ctx.append(_context)


async def _context(app: web.Application) -> AsyncIterator[None]:
    from gateway.runs.crons import CronScheduler

    store = lg.thread_store(app[keys.store_key])
    clock = app[keys.clock_key]
    threads = lg.Threads(app[keys.runs_key], app[keys.worker_key], store, clock)
    app[keys.langgraph_threads_key] = threads
    app[keys.langgraph_started_key] = clock.now()
    scheduler = CronScheduler(
        threads, store, clock, poll_interval=app[keys.settings_key].poll_interval
    )
    scheduler.start()
    yield
    await scheduler.stop()


# parsing shared by every LangGraph handler


def store_of(request: web.Request) -> lg.LangGraphStore:
    return lg.thread_store(request.app[keys.store_key])


def selected(views: list[dict[str, Any]], fields: Sequence[str] | None) -> list[dict[str, Any]]:
    """The views cut to the ``select``ed fields (all of them when none is named)."""
    if not fields:
        return views
    names = tuple(dict.fromkeys(fields))
    return [{name: view[name] for name in names if name in view} for view in views]


def paginated(items: list[Any], limit: int, offset: int, has_more: bool) -> web.Response:
    """The peer's pagination headers (``X-Pagination-Total``, ``X-Pagination-Next``)."""
    headers = {}
    if has_more:
        next_offset = offset + limit
        headers["X-Pagination-Total"] = str(next_offset + 1)
        headers["X-Pagination-Next"] = str(next_offset)
    else:
        headers["X-Pagination-Total"] = str(offset + len(items))
    return web.json_response(items[:limit], headers=headers)


def flow_for_assistant(request: web.Request, assistant: Any) -> Flow:
    """A graph name or a system assistant's UUID, as in run and cron bodies."""
    flows = request.app[keys.flows_key]
    if not isinstance(assistant, str) or not assistant:
        raise errors.Unprocessable("assistant_id: required")
    if assistant in flows:
        return flows[assistant]
    try:
        wanted = str(uuid.UUID(assistant))
    except ValueError:
        graphs = ", ".join(sorted(flows))
        raise errors.Unprocessable(
            f"Invalid assistant: '{assistant}'. Must be either:\n- A valid assistant UUID, or\n"
            f"- One of the registered graphs: {graphs}"
        ) from None
    for flow in flows.values():
        if models.assistant_id(flow.flow_id) == wanted:
            return flow
    raise errors.NotFound(f"Assistant '{wanted}' not found")


# meta


async def ok(request: web.Request) -> web.Response:
    if schema.query(request, models_lg.OkQuery).check_db:
        await request.app[keys.store_key].ping()
    return web.json_response({"ok": True})


async def info(request: web.Request) -> web.Response:
    try:
        version = package_metadata.version("hookgate")
    except package_metadata.PackageNotFoundError:
        version = "0.0.0"
    try:
        langgraph_version: str | None = package_metadata.version("langgraph")
    except package_metadata.PackageNotFoundError:
        langgraph_version = None
    return web.json_response(
        {
            "version": version,
            "langgraph_py_version": langgraph_version,
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
                "langsmith_tracing_session_on_runs": False,
            },
            "host": {
                "kind": "hookgate",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )


# assistants: one system assistant per flow


def assistant_view(request: web.Request, flow: Flow) -> dict[str, Any]:
    created = isoformat(request.app[keys.langgraph_started_key])
    return {
        "assistant_id": models.assistant_id(flow.flow_id),
        "graph_id": flow.flow_id,
        "name": flow.flow_id,
        "description": flow.description or None,
        "config": {},
        "context": {},
        "created_at": created,
        "updated_at": created,
        "metadata": {"created_by": "system"},
        "version": 1,
    }


def _assistant_matches(view: Mapping[str, Any], data: models_lg.AssistantCountRequest) -> bool:
    graph_id, name = data.graph_id, data.name
    wanted = data.metadata or {}
    return (
        (graph_id is None or view["graph_id"] == graph_id)
        and (name is None or str(name).lower() in view["name"].lower())
        and all(view["metadata"].get(key) == value for key, value in wanted.items())
    )


def _assistants(
    request: web.Request, data: models_lg.AssistantCountRequest
) -> list[dict[str, Any]]:
    flows = request.app[keys.flows_key]
    views = [assistant_view(request, flow) for flow in flows.values()]
    return [view for view in views if _assistant_matches(view, data)]


async def search_assistants(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.AssistantSearchRequest)
    limit, offset = data.limit, data.offset
    views = sorted(
        _assistants(request, data),
        key=lambda view: (str(view[data.sort_by]), view["graph_id"]),
        reverse=data.sort_order == "desc",
    )
    window = selected(views[offset : offset + limit + 1], data.select)
    return paginated(window, limit, offset, len(window) > limit)


async def count_assistants(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.AssistantCountRequest)
    return web.json_response(len(_assistants(request, data)))


def _assistant_flow(request: web.Request, *, by_name: bool = False) -> Flow:
    value = request.match_info["assistant_id"]
    if by_name and value in request.app[keys.flows_key]:
        return request.app[keys.flows_key][value]
    wanted = schema.path_id(request, "assistant_id")
    for flow in request.app[keys.flows_key].values():
        if models.assistant_id(flow.flow_id) == wanted:
            return flow
    raise errors.NotFound(f"Assistant {wanted} not found")


async def get_assistant(request: web.Request) -> web.Response:
    return web.json_response(assistant_view(request, _assistant_flow(request)))


async def get_versions(request: web.Request) -> web.Response:
    view = assistant_view(request, _assistant_flow(request))
    view.pop("updated_at")
    return web.json_response([view])


async def get_graph(request: web.Request) -> web.Response:
    flow = _assistant_flow(request, by_name=True)
    graph = getattr(getattr(flow.func, "__self__", None), "graph_json", None)
    if callable(graph):
        return web.json_response(graph())
    return web.json_response(
        {
            "nodes": [
                {"id": "__start__", "type": "schema", "data": "__start__"},
                {"id": flow.flow_id, "type": "runnable", "data": {"name": flow.flow_id}},
                {"id": "__end__", "type": "schema", "data": "__end__"},
            ],
            "edges": [
                {"source": "__start__", "target": flow.flow_id},
                {"source": flow.flow_id, "target": "__end__"},
            ],
        }
    )


async def get_schemas(request: web.Request) -> web.Response:
    flow = _assistant_flow(request)
    schemas = getattr(getattr(flow.func, "__self__", None), "schemas_json", None)
    if callable(schemas):
        return web.json_response({"graph_id": flow.flow_id, **schemas()})
    anything: dict[str, Any] = {"type": "object", "title": flow.flow_id}
    return web.json_response(
        {
            "graph_id": flow.flow_id,
            "input_schema": anything,
            "output_schema": anything,
            "state_schema": anything,
            "config_schema": None,
            "context_schema": None,
        }
    )


async def get_subgraphs(request: web.Request) -> web.Response:
    _assistant_flow(request)
    return web.json_response({})


# threads


async def _thread_or_404(store: lg.LangGraphStore, thread_id: str) -> models.Thread:
    thread = await store.get_thread(thread_id)
    if thread is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    return thread


async def _thread_response(
    store: lg.LangGraphStore, thread: models.Thread, *, include_ttl: bool = False
) -> dict[str, Any]:
    values = await lg.thread_values(store, thread.thread_id)
    return lg.thread_view(thread, values, include_ttl=include_ttl)


def _ttl(value: models_lg.Ttl | float | None, now: float) -> dict[str, Any] | None:
    """``ttl``: minutes, or ``{ttl: minutes, strategy}`` as the SDK sends it."""
    if value is None:
        return None
    minutes, strategy = (
        (value, "delete") if isinstance(value, float) else (value.ttl, value.strategy)
    )
    return {
        "strategy": strategy,
        "ttl_minutes": minutes,
        "expires_at": isoformat(now + minutes * 60),
    }


async def create_thread(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.ThreadCreate)
    store = store_of(request)
    now = request.app[keys.clock_key].now()
    thread_id = str(data.thread_id) if data.thread_id else models.new_id()
    if_exists = data.if_exists
    thread = models.Thread(thread_id, data.metadata or {}, {}, now, now, ttl=_ttl(data.ttl, now))
    updates = [u for step in data.supersteps or () for u in step.updates or ()]
    stored, created = await store.create_thread(thread, if_exists)
    if not created and if_exists == "raise":
        raise errors.Conflict(f"Thread with ID {thread_id} already exists")
    if created:
        values: Any = None
        for update in updates:
            values = lg.updated_values(values, update.values)
            await store.add_thread_state(
                thread_id,
                lg.new_checkpoint_id(),
                values,
                update.as_node,
                request.app[keys.clock_key].now(),
            )
        if not updates:  # a new thread without states: nothing to read back
            return web.json_response(lg.thread_view(stored, None))
    return web.json_response(await _thread_response(store, stored))


def _thread_search(data: models_lg.ThreadCountRequest) -> thread_store.ThreadSearch:
    page = data if isinstance(data, models_lg.ThreadSearchRequest) else None
    return thread_store.ThreadSearch(
        metadata=data.metadata or {},
        ids=tuple(str(i) for i in data.ids or ()),
        status=data.status,
        limit=(page.limit if page else 10) + 1,
        offset=page.offset if page else 0,
        sort_by=(page.sort_by if page else "updated_at").replace("state_updated_at", "updated_at"),
        sort_order=page.sort_order if page else "desc",
    )


async def search_threads(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.ThreadSearchRequest)
    search = _thread_search(data)
    fields: tuple[str, ...] = tuple(data.select or ())
    extract = data.extract or {}
    wanted_values = data.values or {}
    store = store_of(request)
    found = await store.search_threads(search)
    views = []
    for thread in found:
        view = await _thread_response(store, thread)
        if wanted_values and not (
            isinstance(view["values"], dict)
            and all(view["values"].get(k) == v for k, v in wanted_values.items())
        ):
            continue
        if extract:
            view["extracted"] = {
                alias: _extract(view, str(path)) for alias, path in extract.items()
            }
        views.append(view)
    if fields and extract:
        fields = (*fields, "extracted")
    views = selected(views, fields)
    return paginated(views, search.limit - 1, search.offset, len(found) >= search.limit)


def _extract(view: Mapping[str, Any], path: str) -> Any:
    value: Any = view
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def count_threads(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.ThreadCountRequest)
    return web.json_response(await store_of(request).count_threads(_thread_search(data)))


async def get_thread(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    include = schema.query(request, models_lg.ThreadGetQuery).include or ""
    store = store_of(request)
    thread = await _thread_or_404(store, thread_id)
    view = await _thread_response(store, thread, include_ttl="ttl" in include.split(","))
    return web.json_response(view)


async def update_thread(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    data = await schema.body(request, models_lg.ThreadPatch)
    store = store_of(request)
    now = request.app[keys.clock_key].now()
    thread = await store.update_thread(thread_id, data.metadata or {}, now, _ttl(data.ttl, now))
    if thread is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    if "return=minimal" in request.headers.get("Prefer", ""):
        return web.Response(status=204)
    return web.json_response(await _thread_response(store, thread))


async def delete_thread(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    store = store_of(request)
    await _thread_or_404(store, thread_id)
    threads = request.app[keys.langgraph_threads_key]
    for run in await store.inflight_runs(thread_id):
        await threads.cancel(run, "interrupt")
    await store.delete_thread(thread_id)
    return web.Response(status=204)


async def copy_thread(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    store = store_of(request)
    thread = await _thread_or_404(store, thread_id)
    now = request.app[keys.clock_key].now()
    copy = models.Thread(models.new_id(), dict(thread.metadata), dict(thread.config), now, now)
    stored, _ = await store.create_thread(copy, "raise")
    values = await lg.thread_values(store, thread_id)
    if values is not None:
        await store.add_thread_state(copy.thread_id, lg.new_checkpoint_id(), values, None, now)
    return web.json_response(await _thread_response(store, stored))


async def get_state(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    store = store_of(request)
    await _thread_or_404(store, thread_id)
    return web.json_response(await lg.current_state(store, thread_id))


async def get_state_at(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    store = store_of(request)
    await _thread_or_404(store, thread_id)
    if request.method == "POST":
        data = await schema.body(request, models_lg.ThreadStateCheckpointRequest)
        wanted = data.checkpoint.checkpoint_id if data.checkpoint else None
    else:
        wanted = request.match_info["checkpoint_id"]
    checkpoints = await lg.checkpoints(store, thread_id)
    for index, checkpoint_row in enumerate(checkpoints):
        if checkpoint_row.checkpoint_id == wanted:
            parent = checkpoints[index + 1] if index + 1 < len(checkpoints) else None
            return web.json_response(lg.state_view(thread_id, checkpoint_row, parent))
    raise errors.NotFound(f"Checkpoint {wanted} not found")


async def update_state(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    data = await schema.body(request, models_lg.ThreadStateUpdate)
    store = store_of(request)
    thread = await _thread_or_404(store, thread_id)
    if not thread.metadata.get("graph_id"):
        raise errors.BadRequest(f"Thread {thread_id} has no graph ID: run it once first")
    as_node = data.as_node
    values = lg.updated_values(await lg.thread_values(store, thread_id), data.values)
    checkpoint_id = lg.new_checkpoint_id()
    await store.add_thread_state(
        thread_id, checkpoint_id, values, as_node, request.app[keys.clock_key].now()
    )
    ref = lg.checkpoint_ref(thread_id, checkpoint_id)
    return web.json_response(
        {"checkpoint": ref, "configurable": ref, "checkpoint_id": checkpoint_id}
    )


async def history(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    before: str | None
    if request.method == "POST":
        data = await schema.body(request, models_lg.ThreadStateSearch)
        limit = data.limit
        given = data.before
        before = given.checkpoint_id if isinstance(given, models_lg.CheckpointConfig) else given
    else:
        query = schema.query(request, models_lg.HistoryQuery)
        limit, before = query.limit, query.before
    store = store_of(request)
    await _thread_or_404(store, thread_id)
    checkpoints = await lg.checkpoints(store, thread_id)
    if before is not None:
        ids = [c.checkpoint_id for c in checkpoints]
        checkpoints = checkpoints[ids.index(before) + 1 :] if before in ids else []
    states = [
        lg.state_view(
            thread_id, checkpoint, checkpoints[i + 1] if i + 1 < len(checkpoints) else None
        )
        for i, checkpoint in enumerate(checkpoints[:limit])
    ]
    return web.json_response(states)
