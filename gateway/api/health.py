"""``GET /healthz``: is the store reachable? For scripts and load balancers."""

from __future__ import annotations

from aiohttp import web

from gateway import errors, keys


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[keys.store_key].ping()
    except errors.StoreError as exc:
        return web.json_response({"status": "unavailable", "detail": exc.detail}, status=503)
    return web.json_response({"status": "ok"})
