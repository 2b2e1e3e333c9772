"""The operator's actions on endpoints and deliveries, each rule in one place.

Create, update, pause, resume, rotate the secret, send a test event, recover, delete; retry
and replay deliveries. The API, ``/inspect`` and the CLI are adapters over this service: each
action validates, changes the store, logs, and wakes the dispatcher when it made something
due (``wake``; the CLI has no dispatcher of its own, a running gateway finds the rows on its
next poll). A name that finds nothing raises ``errors.NotFound``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import structlog

from gateway import clock as clocks
from gateway import errors, models, settings, signing
from gateway.outbox import endpoint_fields
from gateway.store import Store, base

log = structlog.get_logger(__name__)
TEST_EVENT = "hookgate.test"


def _asleep() -> None:
    """No dispatcher to wake (the CLI)."""


class Admin:
    def __init__(
        self,
        store: Store,
        clock: clocks.Clock,
        config: settings.Settings,
        flow_ids: Collection[str],
        wake: Callable[[], None] = _asleep,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.flow_ids = flow_ids
        self.wake = wake

    def fields(self, data: Mapping[str, Any], *, creating: bool = False) -> dict[str, Any]:
        """``data``'s endpoint fields, validated (``endpoint_fields``)."""
        return endpoint_fields.endpoint_fields(data, self.config, self.flow_ids, creating=creating)

    # endpoints

    async def endpoint(self, endpoint_id: str) -> models.Endpoint:
        found = await self.store.get_endpoint(endpoint_id)
        if found is None:
            raise errors.NotFound(f"Endpoint {endpoint_id} not found")
        return found

    async def create_endpoint(self, data: Mapping[str, Any]) -> models.Endpoint:
        """A push endpoint needs a ``url``; a pull one (``mode: pull``) has none. Without a
        ``secret``, a new one is generated."""
        pulled = data.get("mode") == "pull"
        if pulled and data.get("url") is not None:
            raise errors.Unprocessable(
                "url: a pull endpoint has none: consumers fetch its deliveries"
            )
        if not pulled and not isinstance(data.get("url"), str):
            raise errors.Unprocessable("url: required, a http(s) URL")
        fields = self.fields(data, creating=True)
        fields.setdefault("url", "")
        now = self.clock.now()
        endpoint = models.Endpoint(
            endpoint_id=models.new_id(),
            secret=fields.pop("secret", None) or signing.new_secret(),
            created_at=now,
            updated_at=now,
            **fields,
        )
        await self.store.create_endpoint(endpoint)
        log.info("endpoint_created", endpoint_id=endpoint.endpoint_id, mode=endpoint.mode)
        return endpoint

    async def update_endpoint(self, endpoint_id: str, data: Mapping[str, Any]) -> models.Endpoint:
        changes = self.fields(data)
        if "url" in changes and (await self.endpoint(endpoint_id)).pulled:
            raise errors.Unprocessable("url: a pull endpoint has none: consumers fetch it")
        endpoint = await self._changed(
            endpoint_id, self.store.update_endpoint(endpoint_id, changes, self.clock.now())
        )
        log.info("endpoint_updated", endpoint_id=endpoint_id, fields=sorted(changes))
        self.wake()  # a filter, limit or schedule may let held deliveries go
        return endpoint

    async def pause(self, endpoint_id: str) -> models.Endpoint:
        """Stop sending to an endpoint; its deliveries wait, they are not dropped."""
        endpoint = await self._changed(
            endpoint_id,
            self.store.update_endpoint(endpoint_id, {"enabled": False}, self.clock.now()),
        )
        log.info("endpoint_paused", endpoint_id=endpoint_id)
        return endpoint

    async def resume(self, endpoint_id: str) -> models.Endpoint:
        """Send again: clears a pause, a disabled reason and the failure streak."""
        endpoint = await self._changed(
            endpoint_id, self.store.resume_endpoint(endpoint_id, self.clock.now())
        )
        log.info("endpoint_resumed", endpoint_id=endpoint_id)
        self.wake()
        return endpoint

    async def rotate_secret(self, endpoint_id: str, secret: str | None = None) -> models.Endpoint:
        """A new secret (given or generated); the old one keeps signing too for the
        configured overlap."""
        secret = endpoint_fields.checked_secret(secret or signing.new_secret())
        now = self.clock.now()
        overlap_until = now + self.config.secret_rotation_overlap
        endpoint = await self._changed(
            endpoint_id, self.store.rotate_secret(endpoint_id, secret, overlap_until, now)
        )
        log.info("endpoint_secret_rotated", endpoint_id=endpoint_id, overlap_until=overlap_until)
        return endpoint

    async def send_test(self, endpoint_id: str) -> str:
        """Queue a ``hookgate.test`` event to the endpoint; the new delivery's id."""
        endpoint = await self.endpoint(endpoint_id)
        now = self.clock.now()
        body = json.dumps(
            {
                "type": TEST_EVENT,
                "timestamp": clocks.utc(now).isoformat(timespec="milliseconds"),
                "data": {"endpoint_id": endpoint_id, "message": "a test event from hookgate"},
            },
            separators=(",", ":"),
        ).encode()
        delivery_id = models.new_id()
        await self.store.enqueue_deliveries(
            None,
            [models.NewDelivery(delivery_id, endpoint.url, TEST_EVENT, body, endpoint_id)],
            now,
        )
        log.info("endpoint_test_queued", endpoint_id=endpoint_id, delivery_id=delivery_id)
        self.wake()
        return delivery_id

    async def recover(
        self,
        endpoint_id: str,
        statuses: Collection[models.DeliveryStatus] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Replay an endpoint's deliveries in a time range (default: the failed ones)."""
        await self.endpoint(endpoint_id)
        return await self.replay(
            base.DeliverySelection(
                endpoint_id=endpoint_id,
                statuses=tuple(statuses or (models.DeliveryStatus.FAILED,)),
                since=since,
                until=until,
            )
        )

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Its pending deliveries are cancelled when the dispatcher comes to them."""
        if not await self.store.delete_endpoint(endpoint_id):
            raise errors.NotFound(f"Endpoint {endpoint_id} not found")
        log.info("endpoint_deleted", endpoint_id=endpoint_id)
        self.wake()

    async def _changed(
        self, endpoint_id: str, change: Awaitable[models.Endpoint | None]
    ) -> models.Endpoint:
        endpoint = await change
        if endpoint is None:
            raise errors.NotFound(f"Endpoint {endpoint_id} not found")
        return endpoint

    # deliveries

    async def retry(self, delivery_id: str) -> models.Delivery:
        """Make a delivery due now, whatever its state; it keeps its ``webhook-id``."""
        delivery = await self.store.retry_delivery(delivery_id, self.clock.now())
        if delivery is None:
            raise errors.NotFound(f"Delivery {delivery_id} not found")
        log.info("delivery_retry_requested", delivery_id=delivery_id, run_id=delivery.run_id)
        self.wake()
        return delivery

    async def replay(self, selection: base.DeliverySelection) -> int:
        """Make every selected delivery due now (bulk recovery); each keeps its ``webhook-id``."""
        count = await self.store.replay_deliveries(selection, self.clock.now())
        log.info(
            "deliveries_replayed",
            count=count,
            endpoint_id=selection.endpoint_id,
            run_id=selection.run_id,
        )
        self.wake()
        return count

    async def redeliver_run(self, run_id: str) -> int:
        """Every delivery of a run again."""
        if await self.store.get_run(run_id) is None:
            raise errors.NotFound(f"Run {run_id} not found")
        return await self.replay(base.DeliverySelection(run_id=run_id))

    async def replay_with_run(self, delivery_id: str) -> int:
        """Every delivery of the same run again, or, for an operational event (no run), this
        one; how many."""
        delivery = await self.store.get_delivery(delivery_id)
        if delivery is None:
            raise errors.NotFound(f"Delivery {delivery_id} not found")
        if delivery.run_id is None:
            await self.retry(delivery_id)
            return 1
        return await self.replay(base.DeliverySelection(run_id=delivery.run_id))
