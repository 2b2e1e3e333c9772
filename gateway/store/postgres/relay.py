"""The relay's verbs on PostgreSQL: pull endpoints' deliveries claimed and acknowledged by
consumers in many processes, and the record of endpoints whose filter turned an event away.

Consumers claim with ``FOR UPDATE SKIP LOCKED``: two claiming at once each take different
rows, neither waits for the other. An acknowledgement locks its delivery's row first, so it
and a claim of the same delivery (after its lease lapsed) happen one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway import errors, models
from gateway.store import base, rows
from gateway.store.postgres.deliveries import record_outcome
from gateway.store.postgres.pool import Connection, Database

# Due deliveries of one endpoint, oldest first, that no other consumer holds.
_CLAIM_PULLED = """
WITH chosen AS (
    SELECT delivery_id FROM deliveries
    WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2
      AND (lease_expires_at IS NULL OR lease_expires_at <= $2)
    ORDER BY created_at, delivery_id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries SET lease_expires_at = $3, updated_at = $2, attempts = deliveries.attempts + 1
FROM chosen WHERE deliveries.delivery_id = chosen.delivery_id
RETURNING deliveries.*
"""


class RelayVerbs(Database):
    async def claim_pulled(
        self,
        endpoint_id: str,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: base.ClaimPolicy,
    ) -> list[models.Delivery]:
        async with self._transaction() as conn:
            room = await _pull_room(conn, endpoint_id, limit, now, policy)
            if room <= 0:
                return []
            claimed = await conn.fetch(_CLAIM_PULLED, endpoint_id, now, now + lease_seconds, room)
            await conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
                " response_headers, response_body) VALUES ($1, $2, $3, 0, '{}', '')",
                [(row["delivery_id"], row["attempts"], now) for row in claimed],
            )
            await self._changed(conn, delivery_claimed=[row["delivery_id"] for row in claimed])
        found = [rows.delivery(row) for row in claimed]
        return sorted(found, key=lambda d: (d.created_at, d.delivery_id))

    async def ack_pulled(
        self, delivery_id: str, attempt: int, outcome: base.AttemptOutcome
    ) -> tuple[models.Delivery, base.HealthChange | None] | None:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM deliveries WHERE delivery_id = $1 FOR UPDATE", delivery_id
            )
            if row is None:
                return None
            delivery = rows.delivery(row)
            if await _try_settled(conn, delivery, attempt):
                return delivery, None  # this outcome is on record already: the ack was repeated
            if delivery.status is not models.DeliveryStatus.PENDING or delivery.attempts != attempt:
                raise errors.Conflict(base.stale_ack(delivery, attempt))
            change = await record_outcome(conn, delivery, outcome, self._changed)
            stored = await conn.fetchrow(
                "SELECT * FROM deliveries WHERE delivery_id = $1", delivery_id
            )
        assert stored is not None
        return rows.delivery(stored), change

    async def list_filtered(self, run_id: str) -> list[models.FilteredRoute]:
        found = await self._fetch(
            "SELECT * FROM filtered_routes WHERE run_id = $1 ORDER BY ctid", run_id
        )
        return [models.FilteredRoute(**dict(row)) for row in found]


async def insert_filtered(conn: Connection, filtered: Sequence[models.FilteredRoute]) -> None:
    """Written with the run's ending (``finish_run``)."""
    if not filtered:
        return
    await conn.executemany(
        "INSERT INTO filtered_routes (run_id, endpoint_id, event_type, reason, created_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(f.run_id, f.endpoint_id, f.event_type, f.reason, f.created_at) for f in filtered],
    )


async def _try_settled(conn: Connection, delivery: models.Delivery, attempt: int) -> bool:
    """Whether try ``attempt`` is the delivery's latest and has its real outcome already."""
    if delivery.attempts != attempt:
        return False
    found = await conn.fetchval(
        "SELECT 1 FROM attempts WHERE delivery_id = $1 AND attempt = $2"
        " AND (status_code IS NOT NULL OR (error IS NOT NULL AND error != $3))",
        delivery.delivery_id,
        attempt,
        base.ATTEMPT_OUTCOME_UNKNOWN,
    )
    return found is not None


async def _pull_room(
    conn: Connection, endpoint_id: str, limit: int, now: float, policy: base.ClaimPolicy
) -> int:
    """How many a consumer may claim now: none unless the endpoint pulls and is active (as the
    dispatcher's claim decides for pushed ones); one probe at a time once its failure streak
    reaches the circuit threshold."""
    failures = await conn.fetchval(
        "SELECT consecutive_failures FROM endpoints WHERE endpoint_id = $1 AND mode = 'pull'"
        " AND enabled AND disabled_reason IS NULL AND COALESCE(circuit_open_until, 0) <= $2",
        endpoint_id,
        now,
    )
    if failures is None:
        return 0
    if failures < policy.circuit_failure_threshold:
        return limit
    leased = await conn.fetchval(
        "SELECT COUNT(*) FROM deliveries WHERE endpoint_id = $1 AND status = 'pending'"
        " AND lease_expires_at > $2",
        endpoint_id,
        now,
    )
    return min(limit, 1 - int(leased))
