"""Operations: ``GET /healthz`` (is the store reachable?) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from gateway import errors, keys
from gateway.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[keys.store_key].ping()
    except errors.StoreError as exc:
        return web.json_response({"status": "unavailable", "detail": exc.detail}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[keys.metrics_key].render(
        request.app[keys.store_key], request.app[keys.clock_key].now()
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
