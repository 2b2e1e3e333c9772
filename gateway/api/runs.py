"""``GET /api/v1/runs/{run_id}``: a run in LangGraph's shape, with its output and error."""

from __future__ import annotations

from aiohttp import web

from gateway import errors, keys
from gateway.api import schema
from gateway.runs.payload import run_view


async def get_run(request: web.Request) -> web.Response:
    run_id = schema.path_id(request, "run_id")
    run = await request.app[keys.store_key].get_run(run_id)
    if run is None:
        raise errors.NotFound(f"Run {run_id} not found")
    return web.json_response(run_view(run))
