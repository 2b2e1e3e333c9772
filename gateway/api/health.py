"""Operations: ``GET /healthz`` (can the store be read and written?) and ``GET /metrics``."""

from __future__ import annotations

from aiohttp import web

from gateway import errors, keys
from gateway.api import problems
from gateway.clock import isoformat
from gateway.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    """503 while the store is unreachable or refuses writes (disk full, I/O error, read-only),
    so a load balancer stops sending triggers that could not be stored. ``retention`` says when
    this process last pruned and what went."""
    pruner = request.app[keys.pruner_key]
    retention = {"pruned_at": isoformat(pruner.pruned_at), "pruned": pruner.last.counts()}
    try:
        await request.app[keys.store_key].ping()
    except errors.StoreError as exc:
        body = {"status": "unavailable", "detail": exc.detail, "retention": retention}
        return web.json_response(body, status=503, headers=problems.headers_of(exc))
    return web.json_response({"status": "ok", "retention": retention})


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[keys.metrics_key].render(
        request.app[keys.store_key], request.app[keys.clock_key].now()
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
