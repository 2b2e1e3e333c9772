"""Langflow's trigger surface: ``POST /api/v1/webhook/{flow_id}``, answered as Langflow answers it.

The trigger and its run are committed before the 202 goes out; the answer adds the
``run_id`` and a ``Location`` so the caller can follow the run, which Langflow cannot offer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from aiohttp import web

from gateway import errors, keys, log, models, netguard

logger = structlog.get_logger(__name__)
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "webhook-id", "X-GitHub-Delivery")
SECRET_QUERY_KEYS = frozenset({"x-api-key", "token", "api_key", "apikey", "key"})


async def webhook(request: web.Request) -> web.Response:
    flow_id = request.match_info["flow_id"]
    service = request.app[keys.runs_key]
    settings = request.app[keys.settings_key]
    service.get_flow(flow_id)
    body = await request.read()
    if not body:
        raise errors.BadRequest(
            "Request body is empty. You should provide a JSON payload containing the flow ID."
        )
    callback = request.query.get("webhook")
    if callback is not None:
        netguard.check_url(callback, allow_private=settings.allow_private_networks)

    trigger = models.Trigger(
        trigger_id=models.new_id(),
        flow_id=flow_id,
        received_at=request.app[keys.clock_key].now(),
        method=request.method,
        path=request.path,
        query=_masked_query(request.query_string),
        headers=log.masked_headers(request.headers),
        body=body,
        content_type=request.content_type,
        source=request.remote or "",
        idempotency_key=_idempotency_key(request),
    )
    run, created = await service.start_from_trigger(trigger, flow_input(body), webhook=callback)
    logger.info(
        "trigger_received",
        flow_id=flow_id,
        run_id=run.run_id,
        trigger_id=trigger.trigger_id,
        bytes=len(body),
        duplicate=not created,
    )
    return web.json_response(
        {
            "message": "Task started in the background",
            "status": "in progress",
            "run_id": run.run_id,
        },
        status=202,
        headers={"Location": f"/api/v1/runs/{run.run_id}"},
    )


def flow_input(body: bytes) -> Any:
    """A JSON body is the input as is; anything else becomes ``{"payload": "<text>"}`` (Langflow's rule)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return {"payload": body.decode("utf-8", errors="replace")}


def _idempotency_key(request: web.Request) -> str | None:
    for header in IDEMPOTENCY_HEADERS:
        value = request.headers.get(header)
        if value:
            return f"{header.lower()}:{value}"
    return None


def _masked_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode(
        [
            (key, log.mask(value) if key.lower() in SECRET_QUERY_KEYS else value)
            for key, value in pairs
        ]
    )
