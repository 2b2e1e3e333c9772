"""The bin pages: list, create, view (each capture checked against the chosen secret),
change the reply, delete. The bins themselves: ``gateway.inspect.bins``."""

from __future__ import annotations

from aiohttp import web

from gateway import keys, models
from gateway.inspect import bins, pages, present


async def bins_page(request: web.Request) -> web.Response:
    store = bins.inspect_store(request)
    return pages.render(request, "bins.html", page="bins", bins=await store.list_bins())


async def create_bin(request: web.Request) -> web.Response:
    form = await request.post()
    store = bins.inspect_store(request)
    name = str(form.get("name", "")).strip()[:80]
    count = len(await store.list_bins())
    created = await store.create_bin(
        models.Bin(
            bin_id=bins.new_bin_id(), name=name or f"bin {count + 1}", created_at=pages.now(request)
        )
    )
    return pages.back(
        request, f"bins/{created.bin_id}/view", notice="Bin created: send anything to its URL"
    )


async def bin_page(request: web.Request) -> web.Response:
    bin_id = request.match_info["bin_id"]
    store = bins.inspect_store(request)
    found = pages.found(await store.get_bin(bin_id), f"Bin {bin_id}")
    now = pages.now(request)
    endpoints = await request.config_dict[keys.store_key].list_endpoints()
    choices = bins.secret_choices(
        request.config_dict[keys.dispatcher_key].signing_secret,
        pages.base_url(request),
        endpoints,
        now,
    )
    chosen = bins.choose_secret(found.verify_with, bin_id, choices, endpoints)
    captures = await store.list_captures(bin_id, pages.param(request, "q"), limit=pages.PAGE_SIZE)
    rows = [
        (
            captured,
            bins.verify_capture(captured, chosen),
            present.body_view(captured.body, captured.content_type),
        )
        for captured in captures
    ]
    return pages.render(
        request,
        "bin.html",
        page="bins",
        bin=found,
        bin_url=f"{pages.base_url(request)}/inspect/bins/{bin_id}",
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
        return pages.back(request, f"bins/{bin_id}/view", problem=str(exc))
    updated = await bins.inspect_store(request).update_bin(bin_id, changes)
    pages.found(updated, f"Bin {bin_id}")
    return pages.back(request, f"bins/{bin_id}/view", notice="Saved")


async def delete_bin(request: web.Request) -> web.Response:
    bin_id = request.match_info["bin_id"]
    await bins.inspect_store(request).delete_bin(bin_id)
    return pages.back(request, "bins", notice="Bin deleted")
