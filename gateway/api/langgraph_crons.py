"""LangGraph crons: ``POST /runs/crons``, ``POST /threads/{tid}/runs/crons``, search, count,
get, update, delete. Each firing is a normal run carrying the cron's ``webhook``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import errors, keys, models, netguard
from gateway.api import inputs
from gateway.api.inputs import timestamp
from gateway.api.langgraph import (
    body_of,
    field,
    flow_for_assistant,
    paginated,
    path_uuid,
    selected,
    store_of,
    uuid_of,
)
from gateway.clock import isoformat
from gateway.runs import crons, sse
from gateway.runs import threads as lg
from gateway.store import base

CRON_SORTS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "next_run_date",
    "end_time",
    "created_at",
    "updated_at",
)
CRON_FIELDS = (
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
)


def cron_view(cron: base.Cron) -> dict[str, Any]:
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


def _check_payload(request: web.Request, data: dict[str, Any]) -> None:
    webhook = field(data, "webhook", str, None)
    if webhook is not None:
        settings = request.app[keys.settings_key]
        data["webhook"] = netguard.check_callback(webhook, settings)  # stored as it is sent
    if data.get("stream_mode") is not None:
        try:
            sse.parse_modes(data["stream_mode"])
        except ValueError as exc:
            raise errors.Unprocessable(str(exc)) from None
    field(data, "metadata", dict, {})
    field(data, "config", dict, {})
    field(data, "context", dict, {})
    inputs.choice(data, "multitask_strategy", lg.MULTITASK_STRATEGIES, "enqueue")


def _next_run(schedule: str, timezone: str | None, now: float) -> float:
    """The schedule's first firing from now; a schedule that never fires again is refused."""
    following = crons.next_run(schedule, timezone, now)
    if following is None:
        raise errors.Unprocessable(f"schedule: {schedule!r} never fires after now")
    return following


async def create_cron(request: web.Request) -> web.Response:
    data = await body_of(request, required=True)
    store = store_of(request)
    thread_id = None
    if "thread_id" in request.match_info:
        thread_id = path_uuid(request, "thread_id", "thread ID")
    flow = flow_for_assistant(request, data.get("assistant_id"))
    schedule = crons.check_schedule(data.get("schedule"))
    timezone = crons.check_timezone(data.get("timezone"))
    _check_payload(request, data)
    on_completed = None
    if thread_id is None:
        on_completed = inputs.choice(data, "on_run_completed", ("delete", "keep"), "delete")
    enabled = field(data, "enabled", bool, True)
    end_time = timestamp(data, "end_time")
    if thread_id is not None and await store.get_thread(thread_id) is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    now = request.app[keys.clock_key].now()
    cron_id = models.new_id()
    payload = {**data, "assistant_id": models.assistant_id(flow.flow_id)}
    cron = base.Cron(
        cron_id=cron_id,
        flow_id=flow.flow_id,
        thread_id=thread_id,
        schedule=schedule,
        timezone=timezone,
        payload=payload,
        metadata=field(data, "metadata", dict, {}),
        on_run_completed=on_completed,
        enabled=enabled,
        end_time=end_time,
        next_run_date=_next_run(schedule, timezone, now),
        created_at=now,
        updated_at=now,
    )
    await store.create_cron(cron)
    return web.json_response(cron_view(cron))


def _search(request: web.Request, data: dict[str, Any]) -> base.CronSearch:
    limit, offset = inputs.page(data)
    flow_id = None
    if data.get("assistant_id") is not None:
        flow_id = flow_for_assistant(request, data["assistant_id"]).flow_id
    thread_id = None
    if data.get("thread_id") is not None:
        thread_id = uuid_of(data["thread_id"], "thread ID")
    return base.CronSearch(
        flow_id=flow_id,
        thread_id=thread_id,
        enabled=field(data, "enabled", bool, None),
        metadata=field(data, "metadata", dict, {}),
        limit=limit + 1,
        offset=offset,
        sort_by=inputs.choice(data, "sort_by", CRON_SORTS, "created_at").replace(
            "assistant_id", "flow_id"
        ),
        sort_order=inputs.choice(data, "sort_order", ("asc", "desc"), "desc"),
    )


async def search_crons(request: web.Request) -> web.Response:
    data = await body_of(request)
    search = _search(request, data)
    fields = inputs.string_list(data, "select", CRON_FIELDS)
    found = await store_of(request).search_crons(search)
    views = selected([cron_view(cron) for cron in found], fields)
    return paginated(views, search.limit - 1, search.offset, len(found) >= search.limit)


async def count_crons(request: web.Request) -> web.Response:
    search = _search(request, await body_of(request))
    return web.json_response(await store_of(request).count_crons(search))


async def _cron_or_404(request: web.Request) -> base.Cron:
    cron_id = path_uuid(request, "cron_id", "cron ID")
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
    data = await body_of(request)
    if not data:
        raise errors.BadRequest("Nothing to update: the body is empty")
    cron = await _cron_or_404(request)
    _check_payload(request, data)
    now = request.app[keys.clock_key].now()
    changes: dict[str, Any] = {}
    schedule, timezone = cron.schedule, cron.timezone
    if "schedule" in data:
        schedule = changes["schedule"] = crons.check_schedule(data["schedule"])
    if "timezone" in data:
        timezone = changes["timezone"] = crons.check_timezone(data["timezone"])
    if "schedule" in changes or "timezone" in changes:
        changes["next_run_date"] = _next_run(schedule, timezone, now)
    if "enabled" in data:
        changes["enabled"] = bool(field(data, "enabled", bool, True))
        if changes["enabled"] and not cron.enabled:
            changes["next_run_date"] = _next_run(schedule, timezone, now)
    if "end_time" in data:
        changes["end_time"] = timestamp(data, "end_time")
    if "metadata" in data:
        changes["metadata"] = field(data, "metadata", dict, {})
    if "on_run_completed" in data and cron.thread_id is None:
        changes["on_run_completed"] = inputs.choice(
            data, "on_run_completed", ("delete", "keep"), "delete"
        )
    payload_changes = {k: data[k] for k in PAYLOAD_FIELDS if k in data}
    if payload_changes:
        changes["payload"] = {**cron.payload, **payload_changes}
    updated = await store_of(request).update_cron(cron.cron_id, changes, now)
    if updated is None:
        raise errors.NotFound(f"Cron with ID {cron.cron_id} not found")
    return web.json_response(cron_view(updated))
