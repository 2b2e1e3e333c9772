"""The relay's verbs on SQLite: pull endpoints' deliveries claimed and acknowledged by
consumers, and the record of endpoints whose filter turned an event away.

One writer runs every job in turn, so a claim and an acknowledgement never interleave with
another claim: consumers claiming together get different deliveries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing

from gateway import errors, models
from gateway.store import base, rows
from gateway.store.sqlite.connection import Database, one
from gateway.store.sqlite.deliveries import insert_started_attempts, record_outcome

# Due deliveries of one endpoint, oldest first, not leased by another consumer.
_CLAIM_PULLED = """
UPDATE deliveries SET lease_expires_at = :lease, updated_at = :now, attempts = attempts + 1
WHERE delivery_id IN (
    SELECT delivery_id FROM deliveries
    WHERE endpoint_id = :endpoint AND status = 'pending' AND next_attempt_at <= :now
      AND (lease_expires_at IS NULL OR lease_expires_at <= :now)
    ORDER BY created_at, delivery_id LIMIT :limit
)
RETURNING *
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
        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            room = _pull_room(conn, endpoint_id, limit, now, policy)
            if room <= 0:
                return []
            with closing(
                conn.execute(
                    _CLAIM_PULLED,
                    {
                        "endpoint": endpoint_id,
                        "now": now,
                        "lease": now + lease_seconds,
                        "limit": room,
                    },
                )
            ) as cursor:
                claimed = list(cursor.fetchall())
            insert_started_attempts(conn, claimed, now)
            return claimed

        claimed = await self.writer.submit(job)
        found = [rows.delivery(row) for row in claimed]
        return sorted(found, key=lambda d: (d.created_at, d.delivery_id))

    async def ack_pulled(
        self, delivery_id: str, attempt: int, outcome: base.AttemptOutcome
    ) -> tuple[models.Delivery, base.HealthChange | None] | None:
        def job(conn: sqlite3.Connection) -> tuple[sqlite3.Row, base.HealthChange | None] | None:
            row = one(conn, "SELECT * FROM deliveries WHERE delivery_id = ?", (delivery_id,))
            if row is None:
                return None
            delivery = rows.delivery(row)
            if _try_settled(conn, delivery, attempt):
                return row, None  # this outcome is on record already: the ack was repeated
            if delivery.status is not models.DeliveryStatus.PENDING or delivery.attempts != attempt:
                raise errors.Conflict(base.stale_ack(delivery, attempt))
            change = record_outcome(conn, delivery, outcome)
            stored = one(conn, "SELECT * FROM deliveries WHERE delivery_id = ?", (delivery_id,))
            assert stored is not None
            return stored, change

        found = await self.writer.submit(job)
        return None if found is None else (rows.delivery(found[0]), found[1])

    async def list_filtered(self, run_id: str) -> list[models.FilteredRoute]:
        found = await self._fetchall(
            "SELECT * FROM filtered_routes WHERE run_id = ? ORDER BY rowid", (run_id,)
        )
        return [models.FilteredRoute(**dict(row)) for row in found]


def insert_filtered(conn: sqlite3.Connection, filtered: Sequence[models.FilteredRoute]) -> None:
    """Written with the run's ending (``finish_run``)."""
    conn.executemany(
        "INSERT INTO filtered_routes (run_id, endpoint_id, event_type, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(f.run_id, f.endpoint_id, f.event_type, f.reason, f.created_at) for f in filtered],
    )


def _try_settled(conn: sqlite3.Connection, delivery: models.Delivery, attempt: int) -> bool:
    """Whether try ``attempt`` is the delivery's latest and has its real outcome already."""
    if delivery.attempts != attempt:
        return False
    row = one(
        conn,
        "SELECT 1 FROM attempts WHERE delivery_id = ? AND attempt = ?"
        " AND (status_code IS NOT NULL OR (error IS NOT NULL AND error != ?))",
        (delivery.delivery_id, attempt, base.ATTEMPT_OUTCOME_UNKNOWN),
    )
    return row is not None


def _pull_room(
    conn: sqlite3.Connection, endpoint_id: str, limit: int, now: float, policy: base.ClaimPolicy
) -> int:
    """How many a consumer may claim now: none unless the endpoint pulls and is active (as the
    dispatcher's claim decides for pushed ones); one probe at a time once its failure streak
    reaches the circuit threshold."""
    endpoint = one(
        conn,
        "SELECT consecutive_failures FROM endpoints WHERE endpoint_id = ? AND mode = 'pull'"
        " AND enabled = 1 AND disabled_reason IS NULL AND COALESCE(circuit_open_until, 0) <= ?",
        (endpoint_id, now),
    )
    if endpoint is None:
        return 0
    if endpoint["consecutive_failures"] < policy.circuit_failure_threshold:
        return limit
    leased = one(
        conn,
        "SELECT COUNT(*) FROM deliveries WHERE endpoint_id = ? AND status = 'pending'"
        " AND lease_expires_at > ?",
        (endpoint_id, now),
    )
    return min(limit, 1 - int(leased[0] if leased else 0))
