"""The activity pages: the overview and its live feed, triggers, runs and search."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from gateway import keys, models, paging
from gateway.inspect import bins, pages, present, relaying
from gateway.store import base

RECENT = 300.0  # seconds the overview's rates look back over
KEEP_ALIVE = 15.0


# overview and live feed


async def overview(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    plain = request.config_dict[keys.store_key]
    now = pages.now(request)
    counts = await store.inspect_counts(now - RECENT)
    endpoints = await plain.list_endpoints()
    states: dict[str, int] = dict.fromkeys(("active", "paused", "circuit_open", "disabled"), 0)
    for endpoint in endpoints:
        states[endpoint.state(now)] += 1
    return pages.render(
        request,
        "overview.html",
        page="overview",
        counts=counts,
        run_statuses=[s.value for s in models.RunStatus],
        delivery_statuses=[s.value for s in models.DeliveryStatus],
        endpoint_states=states,
        recent_minutes=RECENT / 60,
        triggers=await store.list_triggers(base.TriggerSelection(), limit=8),
        runs=await store.list_runs(base.RunSelection(), limit=8),
        deliveries=await plain.list_deliveries(base.DeliverySelection(), limit=8),
        bins=(await store.list_bins())[:3],
    )


async def live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``change`` per committed write; the page re-reads what changed."""
    notifier = request.config_dict[keys.inspect_notifier_key]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await response.write(b"retry: 2000\n: connected\n\n")
        async with notifier.subscribe() as queue:
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if change is None:
                    break
                data = json.dumps(change, separators=(",", ":"))
                await response.write(f"event: change\ndata: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


# triggers


async def triggers(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    selection = base.TriggerSelection(
        flow_id=pages.param(request, "flow"), search=pages.param(request, "q")
    )
    found = await store.list_triggers(selection, pages.PAGE_SIZE, pages.cursor(request))
    return pages.render(
        request,
        "triggers.html",
        page="triggers",
        triggers=found,
        page_links=pages.pager(request, found, paging.trigger_position),
        flows=pages.flow_ids(request),
        flow=selection.flow_id or "",
    )


async def trigger(request: web.Request) -> web.Response:
    trigger_id = request.match_info["trigger_id"]
    store = request.config_dict[keys.store_key]
    found = pages.found(await store.get_trigger(trigger_id), f"Trigger {trigger_id}")
    run = await store.get_run(found.run_id) if found.run_id else None
    return pages.render(
        request,
        "trigger.html",
        page="triggers",
        trigger=found,
        run=run,
        body=present.body_view(found.body, found.content_type),
        query=present.masked_query(found.query),
        curl=present.curl_command(found, pages.base_url(request)),
        routes=await relaying.trigger_routes(store, found),
    )


# runs


async def runs(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    status = pages.status_filter(request, models.RunStatus)
    selection = base.RunSelection(
        flow_id=pages.param(request, "flow"),
        status=status,
        search=pages.param(request, "q"),
    )
    found = await store.list_runs(selection, pages.PAGE_SIZE, pages.cursor(request))
    return pages.render(
        request,
        "runs.html",
        page="runs",
        runs=found,
        page_links=pages.pager(request, found, paging.run_position),
        flows=pages.flow_ids(request),
        statuses=[s.value for s in models.RunStatus],
        flow=selection.flow_id or "",
        selected_status=status.value if status else "",
    )


async def run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    store = request.config_dict[keys.store_key]
    found = pages.found(await store.get_run(run_id), f"Run {run_id}")
    events = await store.list_events(run_id)
    return pages.render(
        request,
        "run.html",
        page="runs",
        run=found,
        events=events[-500:],
        events_hidden=max(0, len(events) - 500),
        deliveries=await store.list_deliveries(base.DeliverySelection(run_id=run_id)),
        input=present.pretty_json(found.input),
        output=present.pretty_json(found.output),
        error=present.pretty_json(found.error) if found.error else "",
        webhook=found.webhook,
    )


async def redeliver_run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    count = await pages.admin(request).redeliver_run(run_id)
    return pages.back(request, f"runs/{run_id}", notice=f"Replaying {count} deliveries of this run")


# search


async def search(request: web.Request) -> web.Response:
    query = pages.param(request, "q")
    store = bins.inspect_store(request)
    found_triggers: list[models.Trigger] = []
    found_runs: list[models.Run] = []
    found_captures: list[models.CapturedRequest] = []
    found_delivery = None
    if query:
        found_triggers = await store.list_triggers(
            base.TriggerSelection(search=query), pages.PAGE_SIZE
        )
        found_runs = await store.list_runs(base.RunSelection(search=query), pages.PAGE_SIZE)
        found_captures = await store.list_captures(None, query, pages.PAGE_SIZE)
        found_delivery = await request.config_dict[keys.store_key].get_delivery(query)
    return pages.render(
        request,
        "search.html",
        page="search",
        triggers=found_triggers,
        runs=found_runs,
        captures=found_captures,
        delivery=found_delivery,
    )
