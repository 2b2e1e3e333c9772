"""The ``/inspect`` pages: overview, triggers, runs, deliveries, endpoints, bins, search, live feed.

Handlers read through the store protocol (``Store`` and ``InspectStore``) and act through the
operator service (``gateway.outbox.admin``), as the API and the CLI do. Forms post, then
redirect back with a notice or the service's refusal as a problem (post/redirect/get).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
from collections.abc import Mapping
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from gateway import errors, keys, models
from gateway.inspect import access, bins, present, relaying
from gateway.outbox.admin import Admin
from gateway.store import base

PAGE_SIZE = 50
RECENT = 300.0  # seconds the overview's rates look back over
KEEP_ALIVE = 15.0


def _now(request: web.Request) -> float:
    return request.config_dict[keys.clock_key].now()


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    settings = request.config_dict[keys.settings_key]
    session = access.session_of(request)
    context.setdefault("notice", request.query.get("notice", ""))
    context.setdefault("problem", request.query.get("problem", ""))
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            "now": _now(request),
            "csrf_token": session.csrf,
            "logged_in": bool(settings.api_key),
            "base_url": base_url(request),
            "q": request.query.get("q", ""),
            **context,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def back(request: web.Request, path: str, **query: str) -> web.Response:
    """Post/redirect/get: answer a form with a 303 to ``path`` (under /inspect)."""
    location = URL("/inspect/" + path.lstrip("/")).with_query({k: v for k, v in query.items() if v})
    return web.Response(status=303, headers={"Location": str(location)})


def _admin(request: web.Request) -> Admin:
    return request.config_dict[keys.admin_key]


def _flow_ids(request: web.Request) -> list[str]:
    flows: Mapping[str, Any] = request.config_dict[keys.flows_key]
    return list(flows)


E = TypeVar("E", bound=enum.StrEnum)


def _param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def _status(request: web.Request, statuses: type[E]) -> E | None:
    """The ``status`` filter, if it names one of ``statuses`` (anything else shows all)."""
    value = _param(request, "status")
    if value is None or value not in statuses.__members__.values():
        return None
    return statuses(value)


# overview and live feed


async def overview(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    plain = request.config_dict[keys.store_key]
    now = _now(request)
    counts = await store.inspect_counts(now - RECENT)
    endpoints = await plain.list_endpoints()
    states: dict[str, int] = dict.fromkeys(("active", "paused", "circuit_open", "disabled"), 0)
    for endpoint in endpoints:
        states[endpoint.state(now)] += 1
    return render(
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
        deliveries=await store.find_deliveries(base.DeliverySelection(), limit=8),
        bins=(await store.list_bins())[:3],
    )


async def live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``change`` per committed write; the page re-reads what changed."""
    notifier = request.config_dict[bins.notifier_key]
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
    selection = base.TriggerSelection(flow_id=_param(request, "flow"), search=_param(request, "q"))
    return render(
        request,
        "triggers.html",
        page="triggers",
        triggers=await store.list_triggers(selection, limit=PAGE_SIZE),
        flows=_flow_ids(request),
        flow=selection.flow_id or "",
    )


async def trigger(request: web.Request) -> web.Response:
    trigger_id = request.match_info["trigger_id"]
    found = await request.config_dict[keys.store_key].get_trigger(trigger_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Trigger {trigger_id} not found")
    run = await request.config_dict[keys.store_key].get_run(found.run_id) if found.run_id else None
    return render(
        request,
        "trigger.html",
        page="triggers",
        trigger=found,
        run=run,
        body=present.body_view(found.body, found.content_type),
        query=present.masked_query(found.query),
        curl=present.curl_command(found, base_url(request)),
        routes=await relaying.trigger_routes(request.config_dict[keys.store_key], found),
    )


# runs


async def runs(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    status = _status(request, models.RunStatus)
    selection = base.RunSelection(
        flow_id=_param(request, "flow"),
        status=status,
        search=_param(request, "q"),
    )
    return render(
        request,
        "runs.html",
        page="runs",
        runs=await store.list_runs(selection, limit=PAGE_SIZE),
        flows=_flow_ids(request),
        statuses=[s.value for s in models.RunStatus],
        flow=selection.flow_id or "",
        selected_status=status.value if status else "",
    )


async def run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    store = request.config_dict[keys.store_key]
    found = await store.get_run(run_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Run {run_id} not found")
    events = await store.list_events(run_id)
    return render(
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
    count = await _admin(request).redeliver_run(run_id)
    return back(request, f"runs/{run_id}", notice=f"Replaying {count} deliveries of this run")


# deliveries


async def deliveries(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    status = _status(request, models.DeliveryStatus)
    selection = base.DeliverySelection(
        endpoint_id=_param(request, "endpoint"),
        statuses=(status,) if status else (),
    )
    flow = _param(request, "flow")
    endpoints = await request.config_dict[keys.store_key].list_endpoints()
    return render(
        request,
        "deliveries.html",
        page="deliveries",
        deliveries=await store.find_deliveries(selection, flow_id=flow, limit=PAGE_SIZE),
        statuses=[s.value for s in models.DeliveryStatus],
        flows=_flow_ids(request),
        endpoints=endpoints,
        selected_status=status.value if status else "",
        flow=flow or "",
        endpoint=selection.endpoint_id or "",
    )


async def delivery(request: web.Request) -> web.Response:
    delivery_id = request.match_info["delivery_id"]
    store = request.config_dict[keys.store_key]
    found = await store.get_delivery(delivery_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Delivery {delivery_id} not found")
    attempts = await store.list_attempts(delivery_id)
    endpoint = await store.get_endpoint(found.endpoint_id) if found.endpoint_id else None
    run_obj = await store.get_run(found.run_id) if found.run_id else None
    siblings = (
        await store.list_deliveries(base.DeliverySelection(run_id=found.run_id))
        if found.run_id
        else []
    )
    return render(
        request,
        "delivery.html",
        page="deliveries",
        delivery=found,
        attempts=list(reversed(attempts)),
        endpoint=endpoint,
        run=run_obj,
        siblings=len(siblings),
        **await relaying.payload_views(found, endpoint),
        sent_headers=functools.partial(relaying.sent_headers, endpoint=endpoint),
        body_view=present.body_view,
        sent_url=found.url + ("&" if "?" in found.url else "?") + "hookgate_token=…",
    )


async def retry_delivery(request: web.Request) -> web.Response:
    delivery_id = request.match_info["delivery_id"]
    await _admin(request).retry(delivery_id)
    return back(
        request, f"deliveries/{delivery_id}", notice="Retry requested: it is being sent now"
    )


async def replay_delivery(request: web.Request) -> web.Response:
    """Replay: every delivery of the same run (or, for an operational event, this one) again."""
    delivery_id = request.match_info["delivery_id"]
    count = await _admin(request).replay_with_run(delivery_id)
    return back(
        request,
        f"deliveries/{delivery_id}",
        notice=f"Replaying {count} {'delivery' if count == 1 else 'deliveries'}, "
        "each with its original webhook-id",
    )


# endpoints


async def endpoints(request: web.Request) -> web.Response:
    store = request.config_dict[keys.store_key]
    return render(
        request,
        "endpoints.html",
        page="endpoints",
        endpoints=await store.list_endpoints(),
        flows=_flow_ids(request),
        event_types=models.EVENT_TYPES,
        bins=await bins.inspect_store(request).list_bins(),
    )


async def endpoint(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["endpoint_id"]
    store = request.config_dict[keys.store_key]
    found = await store.get_endpoint(endpoint_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Endpoint {endpoint_id} not found")
    return render(
        request,
        "endpoint.html",
        page="endpoints",
        endpoint=found,
        state=found.state(_now(request)),
        rotating=len(found.signing_secrets(_now(request))) > 1,
        flows=_flow_ids(request),
        event_types=models.EVENT_TYPES,
        deliveries=await store.list_deliveries(
            base.DeliverySelection(endpoint_id=endpoint_id), limit=20
        ),
    )


def _endpoint_form(
    request: web.Request, form: Mapping[str, Any], *, creating: bool
) -> dict[str, Any]:
    """The form's fields as the operator service takes them (``endpoint_fields``): the
    ticked flows and events among those the form offers, relay fields with an empty box meaning
    the default."""
    typed: dict[str, Any] = {
        "description": str(form.get("description", "")).strip()[:200],
        "flow_ids": [f for f in _all(form, "flow_ids") if f in _flow_ids(request)],
        "event_types": [e for e in _all(form, "event_types") if e in models.EVENT_TYPES],
    }
    url = str(form.get("url", "")).strip()
    if url or creating:
        typed["url"] = url
    if "payload" in form:
        typed["payload"] = str(form["payload"])
        names = str(form.get("forward_headers", "")).replace(",", " ").split()
        typed["forward_headers"] = names or None
        typed["filter"] = str(form.get("filter", "")).strip() or None
        source = str(form.get("transform", "")).strip()
        language = str(form.get("transform_language", "jmespath"))
        typed["transform"] = {language: source} if source else None
    return typed


def _all(form: Mapping[str, Any], name: str) -> list[str]:
    getall = getattr(form, "getall", None)
    values = getall(name, []) if getall else []
    return [str(value) for value in values]


async def create_endpoint(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        created = await _admin(request).create_endpoint(
            _endpoint_form(request, form, creating=True)
        )
    except errors.Unprocessable as exc:
        return back(request, "endpoints", problem=exc.detail)
    return back(
        request,
        f"endpoints/{created.endpoint_id}",
        notice="Endpoint created. Its signing secret is masked here: use Copy secret.",
    )


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["endpoint_id"]
    form = await request.post()
    try:
        await _admin(request).update_endpoint(
            endpoint_id, _endpoint_form(request, form, creating=False)
        )
    except errors.Unprocessable as exc:
        return back(request, f"endpoints/{endpoint_id}", problem=exc.detail)
    return back(request, f"endpoints/{endpoint_id}", notice="Saved")


async def endpoint_action(request: web.Request) -> web.Response:
    """pause, resume, rotate, test, recover, delete: the endpoint verbs the API offers."""
    endpoint_id = request.match_info["endpoint_id"]
    action = request.match_info["action"]
    admin = _admin(request)
    if action == "pause":
        await admin.pause(endpoint_id)
        notice = "Paused: its deliveries wait, they are not dropped"
    elif action == "resume":
        await admin.resume(endpoint_id)
        notice = "Resumed"
    elif action == "rotate":
        await admin.rotate_secret(endpoint_id)
        overlap = request.config_dict[keys.settings_key].secret_rotation_overlap
        notice = f"New secret; the old one keeps signing too for {overlap / 3600:g} h"
    elif action == "test":
        delivery_id = await admin.send_test(endpoint_id)
        return back(request, f"deliveries/{delivery_id}", notice="Test event queued")
    elif action == "recover":
        count = await admin.recover(endpoint_id)
        notice = f"Replaying {count} failed deliveries"
    elif action == "delete":
        await admin.delete_endpoint(endpoint_id)
        return back(request, "endpoints", notice="Endpoint deleted")
    else:
        raise web.HTTPNotFound()
    return back(request, f"endpoints/{endpoint_id}", notice=notice)


async def endpoint_secret(request: web.Request) -> web.Response:
    """The secret, as JSON, for the Copy button only (CSRF-checked POST; never in a page)."""
    endpoint_id = request.match_info["endpoint_id"]
    found = await request.config_dict[keys.store_key].get_endpoint(endpoint_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Endpoint {endpoint_id} not found")
    return web.json_response({"secret": found.secret}, headers={"Cache-Control": "no-store"})


# bins


async def bins_page(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    return render(request, "bins.html", page="bins", bins=await store.list_bins())


async def create_bin(request: web.Request) -> web.Response:
    form = await request.post()
    store = bins.inspect_store(request)
    name = str(form.get("name", "")).strip()[:80]
    count = len(await store.list_bins())
    created = await store.create_bin(
        base.Bin(
            bin_id=bins.new_bin_id(), name=name or f"bin {count + 1}", created_at=_now(request)
        )
    )
    return back(
        request, f"bins/{created.bin_id}/view", notice="Bin created: send anything to its URL"
    )


async def bin_page(request: web.Request) -> web.Response:
    bin_id = request.match_info["bin_id"]
    store = bins.inspect_store(request)
    found = await store.get_bin(bin_id)
    if found is None:
        raise web.HTTPNotFound(text=f"Bin {bin_id} not found")
    now = _now(request)
    endpoints = await request.config_dict[keys.store_key].list_endpoints()
    choices = bins.secret_choices(
        request.config_dict[keys.dispatcher_key].signing_secret, base_url(request), endpoints, now
    )
    chosen = bins.choose_secret(found.verify_with, bin_id, choices, endpoints)
    captures = await store.list_captures(bin_id, _param(request, "q"), limit=PAGE_SIZE)
    rows = [
        (
            captured,
            bins.verify_capture(captured, chosen),
            present.body_view(captured.body, captured.content_type),
        )
        for captured in captures
    ]
    return render(
        request,
        "bin.html",
        page="bins",
        bin=found,
        bin_url=f"{base_url(request)}/inspect/bins/{bin_id}",
        rows=rows,
        choices=[(choice.key, choice.label) for choice in choices],
        chosen=chosen.key,
        auto=found.verify_with == "auto",
        masked_query=present.masked_query,
    )


async def update_bin(request: web.Request) -> web.Response:
    bin_id = request.match_info["bin_id"]
    form = await request.post()
    try:
        changes = bins.parse_reply(form)
    except ValueError as exc:
        return back(request, f"bins/{bin_id}/view", problem=str(exc))
    updated = await bins.inspect_store(request).update_bin(bin_id, changes)
    if updated is None:
        raise web.HTTPNotFound(text=f"Bin {bin_id} not found")
    request.config_dict[bins.notifier_key].publish("bin", bin_id=bin_id)
    return back(request, f"bins/{bin_id}/view", notice="Saved")


async def delete_bin(request: web.Request) -> web.Response:
    bin_id = request.match_info["bin_id"]
    await bins.inspect_store(request).delete_bin(bin_id)
    return back(request, "bins", notice="Bin deleted")


# search and login


async def search(request: web.Request) -> web.Response:
    query = _param(request, "q")
    store = bins.inspect_store(request)
    found_triggers: list[models.Trigger] = []
    found_runs: list[models.Run] = []
    found_captures: list[base.CapturedRequest] = []
    found_delivery = None
    if query:
        found_triggers = await store.list_triggers(base.TriggerSelection(search=query), PAGE_SIZE)
        found_runs = await store.list_runs(base.RunSelection(search=query), PAGE_SIZE)
        found_captures = await store.list_captures(None, query, PAGE_SIZE)
        found_delivery = await request.config_dict[keys.store_key].get_delivery(query)
    return render(
        request,
        "search.html",
        page="search",
        triggers=found_triggers,
        runs=found_runs,
        captures=found_captures,
        delivery=found_delivery,
    )


async def login_form(request: web.Request) -> web.Response:
    target = access.local_next(request.query.get("next"))
    return render(request, "login.html", page="login", next=target)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    given = str(form.get("api_key", ""))
    target = access.local_next(str(form.get("next", "")))
    wait = access.login_wait(request)
    if wait:
        problem = f"Too many failed attempts: try again in {wait} s."
        response = render(request, "login.html", page="login", next=target, problem=problem)
        response.set_status(429)
        response.headers["Retry-After"] = str(wait)
        return response
    if not access.api_key_matches(request, given):
        access.login_failed(request)
        problem = "That is not the API key."
        response = render(request, "login.html", page="login", next=target, problem=problem)
        response.set_status(401)
        return response
    redirect = web.Response(status=303, headers={"Location": target})
    await access.log_in(request, redirect)
    return redirect


async def logout(request: web.Request) -> web.Response:
    redirect = web.Response(status=303, headers={"Location": "/inspect/login"})
    await access.log_out(request, redirect)
    return redirect
