"""Webhook ingest: an inbound request becomes a stored trigger and its run, for every route that
takes webhooks (Langflow's ``/api/v1/webhook``, hookgate's ``/webhook``).

The trigger and its run are committed before the caller may answer. A flow configured with
``verify = "github" | "stripe" | "standard" | "slack"`` must prove its sender by a signature over
the raw body: a failure stores the trigger as rejected, starts no run and raises
``Unauthorized``. A trigger token (``hookgate token``) must be valid for the flow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from gateway import errors, flows, log, models, netguard, settings, strictjson, verify
from gateway.flows import forward
from gateway.runs.service import RunService

logger = structlog.get_logger(__name__)
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "webhook-id", "svix-id", "X-GitHub-Delivery")


@dataclasses.dataclass(frozen=True)
class Inbound:
    """What ingest keeps of an HTTP request; ``headers`` may be case-insensitive. The body is
    read (``read``) only once the flow and the token hold."""

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    read: Callable[[], Awaitable[bytes]]
    content_type: str
    source: str


@dataclasses.dataclass
class Ingest:
    service: RunService
    config: settings.Settings

    async def receive(
        self, ref: str, inbound: Inbound, *, token: str | None, webhook: str | None
    ) -> models.Run:
        """Store the trigger for the flow named ``ref`` (id, ``endpoint_name`` or UUID) and
        start its run, or find the run of an earlier delivery of the same event."""
        service, config = self.service, self.config
        found = flows.find_flow(service.flows, ref)
        flow_id = found.flow_id if found is not None else ref
        if token is not None:
            verify.check_trigger_token(config.signing_secret, token, flow_id, service.clock.now())
        if found is None:
            raise errors.NotFound(f"Flow identifier {ref} not found")
        body = await inbound.read()
        if not body:
            raise errors.BadRequest(
                "Request body is empty. You should provide a JSON payload containing the flow ID."
            )
        trigger = models.Trigger(
            trigger_id=models.new_id(),
            flow_id=flow_id,
            received_at=service.clock.now(),
            method=inbound.method,
            path=inbound.path,
            query=log.masked_query(inbound.query_string),
            headers=log.masked_headers(inbound.headers),
            body=body,
            content_type=inbound.content_type,
            source=inbound.source,
            idempotency_key=idempotency_key(inbound.headers),
            dedup_window=config.dedup_window_seconds,
        )
        flow_settings = config.flows.get(flow_id)
        if flow_settings is not None and flow_settings.verify != verify.NONE:
            await self._verify_or_reject(
                trigger, inbound.headers, flow_settings.verify, flow_settings.secret
            )
            trigger = dataclasses.replace(trigger, verification="verified")
        if webhook is not None:
            webhook = netguard.check_callback(webhook, config)
        value = (
            forward.request_value(trigger)
            if flow_settings is not None and flow_settings.kind == "forward"
            else flow_input(body)
        )
        run, created = await service.start_from_trigger(trigger, value, webhook=webhook)
        service.metrics.triggers.labels(flow_id, "accepted" if created else "duplicate").inc()
        logger.info(
            "trigger_received",
            flow_id=flow_id,
            run_id=run.run_id,
            trigger_id=trigger.trigger_id,
            bytes=len(body),
            verification=trigger.verification,
            duplicate=not created,
        )
        return run

    async def _verify_or_reject(
        self, trigger: models.Trigger, headers: Mapping[str, str], scheme: str, secret: str
    ) -> None:
        """Check the provider's signature over the raw body; on failure store the trigger as
        rejected (no run) and raise ``Unauthorized`` with the reason."""
        try:
            verify.verify(scheme, secret, headers, trigger.body, trigger.received_at)
        except verify.VerificationFailed as exc:
            rejected = dataclasses.replace(trigger, verification=f"rejected: {exc.reason}")
            await self.service.store.store_rejected_trigger(rejected)
            self.service.metrics.triggers.labels(trigger.flow_id, "rejected").inc()
            logger.warning(
                "trigger_rejected",
                flow_id=trigger.flow_id,
                trigger_id=trigger.trigger_id,
                scheme=scheme,
                reason=exc.reason,
            )
            raise errors.Unauthorized(
                f"Webhook verification failed ({scheme}): {exc.reason}"
            ) from None


def flow_input(body: bytes) -> Any:
    """A JSON body is the input as is; anything else becomes ``{"payload": "<text>"}`` (Langflow's
    rule). JSON the gateway could not store or sign again as valid JSON (``NaN``, ``Infinity``,
    nesting past ``strictjson.MAX_DEPTH``) counts as text too: the sender's event is kept, whole."""
    try:
        return strictjson.loads(body)
    except strictjson.InvalidJSON:
        return {"payload": body.decode("utf-8", errors="replace")}


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    for header in IDEMPOTENCY_HEADERS:
        value = headers.get(header)
        if value:
            return f"{header.lower()}:{value}"
    return None
