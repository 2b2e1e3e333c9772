"""LangGraph crons: ``POST /runs/crons``, ``POST /threads/{tid}/runs/crons``, search, count,
get, update, delete. Each firing is a normal run carrying the cron's ``webhook``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import errors, keys, models, netguard
from gateway.api import schema
from gateway.api.langgraph import flow_for_assistant, paginated, selected, store_of
from gateway.api.schema import langgraph as models_lg
from gateway.clock import isoformat
from gateway.runs import crons
from gateway.store import thread_store


def cron_view(cron: models.Cron) -> dict[str, Any]:
    return {
        "cron_id": cron.cron_id,
        "assistant_id": models.assistant_id(cron.flow_id),
        "thread_id": cron.thread_id,
        "user_id": cron.user_id,
        "end_time": isoformat(cron.end_time),
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "payload": cron.payload,
        "next_run_date": isoformat(cron.next_run_date),
        "metadata": cron.metadata,
        "on_run_completed": cron.on_run_completed,
        "enabled": cron.enabled,
        "created_at": isoformat(cron.created_at),
        "updated_at": isoformat(cron.updated_at),
    }


def _check_webhook(request: web.Request, raw: dict[str, Any], webhook: str | None) -> None:
    """The payload is stored as it was sent, with the callback URL as netguard reads it."""
    if webhook is not None:
        raw["webhook"] = netguard.check_callback(webhook, request.app[keys.settings_key])


def _next_run(schedule: str, timezone: str | None, now: float) -> float:
    """The schedule's first firing from now; a schedule that never fires again is refused."""
    following = crons.next_run(schedule, timezone, now)
    if following is None:
        raise errors.Unprocessable(f"schedule: {schedule!r} never fires after now")
    return following


async def create_cron(request: web.Request) -> web.Response:
    raw = await schema.json_object(request, required=True)
    store = store_of(request)
    thread_id = None
    if "thread_id" in request.match_info:
        thread_id = schema.path_id(request, "thread_id")
    data = schema.validate(models_lg.CronCreate, raw)
    flow = flow_for_assistant(request, data.assistant_id)
    schedule, timezone = data.schedule, data.timezone
    _check_webhook(request, raw, data.webhook)
    on_completed = data.on_run_completed if thread_id is None else None
    if thread_id is not None and await store.get_thread(thread_id) is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    now = request.app[keys.clock_key].now()
    cron_id = models.new_id()
    payload = {**raw, "assistant_id": models.assistant_id(flow.flow_id)}
    cron = models.Cron(
        cron_id=cron_id,
        flow_id=flow.flow_id,
        thread_id=thread_id,
        schedule=schedule,
        timezone=timezone,
        payload=payload,
        metadata=data.metadata or {},
        on_run_completed=on_completed,
        enabled=data.enabled,
        end_time=data.end_time,
        next_run_date=_next_run(schedule, timezone, now),
        created_at=now,
        updated_at=now,
    )
    await store.create_cron(cron)
    return web.json_response(cron_view(cron))


def _search(request: web.Request, data: models_lg.CronCountRequest) -> thread_store.CronSearch:
    page = data if isinstance(data, models_lg.CronSearch) else None
    flow_id = None
    if data.assistant_id is not None:
        flow_id = flow_for_assistant(request, data.assistant_id).flow_id
    return thread_store.CronSearch(
        flow_id=flow_id,
        thread_id=None if data.thread_id is None else str(data.thread_id),
        enabled=data.enabled,
        metadata=data.metadata or {},
        limit=(page.limit if page else 10) + 1,
        offset=page.offset if page else 0,
        sort_by=(page.sort_by if page else "created_at").replace("assistant_id", "flow_id"),
        sort_order=page.sort_order if page else "desc",
    )


async def search_crons(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.CronSearch)
    search = _search(request, data)
    found = await store_of(request).search_crons(search)
    views = selected([cron_view(cron) for cron in found], data.select)
    return paginated(views, search.limit - 1, search.offset, len(found) >= search.limit)


async def count_crons(request: web.Request) -> web.Response:
    search = _search(request, await schema.body(request, models_lg.CronCountRequest))
    return web.json_response(await store_of(request).count_crons(search))


async def _cron_or_404(request: web.Request) -> models.Cron:
    cron_id = schema.path_id(request, "cron_id")
    cron = await store_of(request).get_cron(cron_id)
    if cron is None:
        raise errors.NotFound(f"Cron with ID {cron_id} not found")
    return cron


async def get_cron(request: web.Request) -> web.Response:
    return web.json_response(cron_view(await _cron_or_404(request)))


async def delete_cron(request: web.Request) -> web.Response:
    cron = await _cron_or_404(request)
    await store_of(request).delete_cron(cron.cron_id)
    return web.Response(status=204)


PAYLOAD_FIELDS = (
    "input",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)


async def update_cron(request: web.Request) -> web.Response:
    raw = await schema.json_object(request)
    if not raw:
        raise errors.BadRequest("Nothing to update: the body is empty")
    data = schema.validate(models_lg.CronPatch, raw)
    cron = await _cron_or_404(request)
    _check_webhook(request, raw, data.webhook)
    now = request.app[keys.clock_key].now()
    changes: dict[str, Any] = {}
    schedule, timezone = cron.schedule, cron.timezone
    if data.schedule is not None:
        schedule = changes["schedule"] = data.schedule
    if "timezone" in raw:
        timezone = changes["timezone"] = data.timezone
    if "schedule" in changes or "timezone" in changes:
        changes["next_run_date"] = _next_run(schedule, timezone, now)
    if data.enabled is not None:
        changes["enabled"] = data.enabled
        if data.enabled and not cron.enabled:
            changes["next_run_date"] = _next_run(schedule, timezone, now)
    if "end_time" in raw:
        changes["end_time"] = data.end_time
    if "metadata" in raw:
        changes["metadata"] = data.metadata or {}
    if data.on_run_completed is not None and cron.thread_id is None:
        changes["on_run_completed"] = data.on_run_completed
    payload_changes = {k: raw[k] for k in PAYLOAD_FIELDS if k in raw}
    if payload_changes:
        changes["payload"] = {**cron.payload, **payload_changes}
    updated = await store_of(request).update_cron(cron.cron_id, changes, now)
    if updated is None:
        raise errors.NotFound(f"Cron with ID {cron.cron_id} not found")
    return web.json_response(cron_view(updated))
