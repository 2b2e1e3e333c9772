"""The outbox pages: deliveries and subscriber endpoints, with their operator actions."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import errors, keys, models, paging
from gateway.inspect import bins, pages, present, relaying
from gateway.store import base

# deliveries


async def deliveries(request: web.Request) -> web.Response:
    store = request.config_dict[keys.store_key]
    status = pages.status_filter(request, models.DeliveryStatus)
    selection = base.DeliverySelection(
        endpoint_id=pages.param(request, "endpoint"),
        statuses=(status,) if status else (),
        flow_id=pages.param(request, "flow"),
    )
    found = await store.list_deliveries(selection, pages.PAGE_SIZE, pages.cursor(request))
    return pages.render(
        request,
        "deliveries.html",
        page="deliveries",
        deliveries=found,
        page_links=pages.pager(request, found, paging.delivery_position),
        statuses=[s.value for s in models.DeliveryStatus],
        flows=pages.flow_ids(request),
        endpoints=await store.list_endpoints(),
        selected_status=status.value if status else "",
        flow=selection.flow_id or "",
        endpoint=selection.endpoint_id or "",
    )


async def delivery(request: web.Request) -> web.Response:
    delivery_id = request.match_info["delivery_id"]
    store = request.config_dict[keys.store_key]
    found = pages.found(await store.get_delivery(delivery_id), f"Delivery {delivery_id}")
    attempts = await store.list_attempts(delivery_id)
    endpoint = await store.get_endpoint(found.endpoint_id) if found.endpoint_id else None
    run_obj = await store.get_run(found.run_id) if found.run_id else None
    siblings = (
        await store.list_deliveries(base.DeliverySelection(run_id=found.run_id))
        if found.run_id
        else []
    )
    return pages.render(
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
    await pages.admin(request).retry(delivery_id)
    return pages.back(
        request, f"deliveries/{delivery_id}", notice="Retry requested: it is being sent now"
    )


async def replay_delivery(request: web.Request) -> web.Response:
    """Replay: every delivery of the same run (or, for an operational event, this one) again."""
    delivery_id = request.match_info["delivery_id"]
    count = await pages.admin(request).replay_with_run(delivery_id)
    return pages.back(
        request,
        f"deliveries/{delivery_id}",
        notice=f"Replaying {count} {'delivery' if count == 1 else 'deliveries'}, "
        "each with its original webhook-id",
    )


# endpoints


async def endpoints(request: web.Request) -> web.Response:
    store = request.config_dict[keys.store_key]
    return pages.render(
        request,
        "endpoints.html",
        page="endpoints",
        endpoints=await store.list_endpoints(),
        flows=pages.flow_ids(request),
        event_types=models.EVENT_TYPES,
        bins=await bins.inspect_store(request).list_bins(),
    )


async def endpoint(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["endpoint_id"]
    store = request.config_dict[keys.store_key]
    found = await pages.admin(request).endpoint(endpoint_id)
    return pages.render(
        request,
        "endpoint.html",
        page="endpoints",
        endpoint=found,
        state=found.state(pages.now(request)),
        rotating=len(found.signing_secrets(pages.now(request))) > 1,
        flows=pages.flow_ids(request),
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
        "flow_ids": [f for f in _all(form, "flow_ids") if f in pages.flow_ids(request)],
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
        created = await pages.admin(request).create_endpoint(
            _endpoint_form(request, form, creating=True)
        )
    except errors.Unprocessable as exc:
        return pages.back(request, "endpoints", problem=exc.detail)
    return pages.back(
        request,
        f"endpoints/{created.endpoint_id}",
        notice="Endpoint created. Its signing secret is masked here: use Copy secret.",
    )


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["endpoint_id"]
    form = await request.post()
    try:
        await pages.admin(request).update_endpoint(
            endpoint_id, _endpoint_form(request, form, creating=False)
        )
    except errors.Unprocessable as exc:
        return pages.back(request, f"endpoints/{endpoint_id}", problem=exc.detail)
    return pages.back(request, f"endpoints/{endpoint_id}", notice="Saved")


async def endpoint_action(request: web.Request) -> web.Response:
    """pause, resume, rotate, test, recover, delete: the endpoint verbs the API offers."""
    endpoint_id = request.match_info["endpoint_id"]
    action = request.match_info["action"]
    admin = pages.admin(request)
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
        return pages.back(request, f"deliveries/{delivery_id}", notice="Test event queued")
    elif action == "recover":
        count = await admin.recover(endpoint_id)
        notice = f"Replaying {count} failed deliveries"
    elif action == "delete":
        await admin.delete_endpoint(endpoint_id)
        return pages.back(request, "endpoints", notice="Endpoint deleted")
    else:
        raise web.HTTPNotFound()
    return pages.back(request, f"endpoints/{endpoint_id}", notice=notice)


async def endpoint_secret(request: web.Request) -> web.Response:
    """The secret, as JSON, for the Copy button only (CSRF-checked POST; never in a page)."""
    endpoint_id = request.match_info["endpoint_id"]
    found = await pages.admin(request).endpoint(endpoint_id)
    return web.json_response({"secret": found.secret}, headers={"Cache-Control": "no-store"})
