"""Langflow's trigger surface: ``POST /api/v1/webhook/{flow_id}``, answered as Langflow answers it.

The trigger and its run are committed before the 202 goes out; the answer adds the
``run_id`` and a ``Location`` so the caller can follow the run, which Langflow cannot offer.

A flow configured with ``verify = "github" | "stripe" | "standard" | "slack"`` must prove its
sender by a signature over the raw body: a failure answers 401, stores the trigger as
rejected and starts no run. A ``?token=`` made by ``hookgate token`` stands in for the API key
on this route only (see ``middleware.carries_trigger_token``) and must be valid for the flow,
otherwise 403 with nothing stored.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from aiohttp import web

from gateway import errors, keys, log, models, netguard, verify

logger = structlog.get_logger(__name__)
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "webhook-id", "svix-id", "X-GitHub-Delivery")
SECRET_QUERY_KEYS = frozenset({"x-api-key", "token", "api_key", "apikey", "key"})
TRIGGER_TOKEN_PARAM = "token"


async def webhook(request: web.Request) -> web.Response:
    flow_id = request.match_info["flow_id"]
    service = request.app[keys.runs_key]
    settings = request.app[keys.settings_key]
    clock = request.app[keys.clock_key]
    if TRIGGER_TOKEN_PARAM in request.query:
        # A signed trigger URL: the API key middleware let it through, so the token must hold.
        verify.check_trigger_token(
            settings.signing_secret, request.query[TRIGGER_TOKEN_PARAM], flow_id, clock.now()
        )
    service.get_flow(flow_id)
    body = await request.read()
    if not body:
        raise errors.BadRequest(
            "Request body is empty. You should provide a JSON payload containing the flow ID."
        )
    received_at = clock.now()
    trigger = models.Trigger(
        trigger_id=models.new_id(),
        flow_id=flow_id,
        received_at=received_at,
        method=request.method,
        path=request.path,
        query=_masked_query(request.query_string),
        headers=log.masked_headers(request.headers),
        body=body,
        content_type=request.content_type,
        source=request.remote or "",
        idempotency_key=_idempotency_key(request),
        dedup_window=settings.dedup_window_seconds,
    )
    flow_settings = settings.flows.get(flow_id)
    if flow_settings is not None and flow_settings.verify != verify.NONE:
        await _verify_or_reject(request, trigger, flow_settings.verify, flow_settings.secret)
        trigger = dataclasses.replace(trigger, verification="verified")

    callback = request.query.get("webhook")
    if callback is not None:
        netguard.check_url(
            callback,
            allow_private=settings.allow_private_networks,
            allow=netguard.Allowlist.parse(settings.allowed_targets),
        )

    run, created = await service.start_from_trigger(trigger, flow_input(body), webhook=callback)
    request.app[keys.metrics_key].triggers.labels(
        flow_id, "accepted" if created else "duplicate"
    ).inc()
    logger.info(
        "trigger_received",
        flow_id=flow_id,
        run_id=run.run_id,
        trigger_id=trigger.trigger_id,
        bytes=len(body),
        verification=trigger.verification,
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


async def _verify_or_reject(
    request: web.Request, trigger: models.Trigger, scheme: str, secret: str
) -> None:
    """Check the provider's signature over the raw body; on failure store the trigger as
    rejected (no run) and answer 401 with the reason."""
    try:
        verify.verify(scheme, secret, request.headers, trigger.body, trigger.received_at)
    except verify.VerificationFailed as exc:
        rejected = dataclasses.replace(trigger, verification=f"rejected: {exc.reason}")
        await request.app[keys.store_key].store_rejected_trigger(rejected)
        request.app[keys.metrics_key].triggers.labels(trigger.flow_id, "rejected").inc()
        logger.warning(
            "trigger_rejected",
            flow_id=trigger.flow_id,
            trigger_id=trigger.trigger_id,
            scheme=scheme,
            reason=exc.reason,
        )
        raise errors.Unauthorized(f"Webhook verification failed ({scheme}): {exc.reason}") from None


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
