"""The outbox on SQLite: deliveries, their attempts, and the endpoint health they move."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing

from gateway import models
from gateway.outbox import health
from gateway.store import base, rows, sql
from gateway.store.sqlite.connection import Database, one

# Fair claiming: each destination (an endpoint, or a per-run URL) gets at most its free
# concurrency, so one slow receiver cannot fill every slot. Paused, disabled and open-circuit
# endpoints are skipped; a tripped circuit past its cool-down lets one probe through.
# Its cost follows the destinations, not the backlog (migration 14): the leases in flight come
# from their own index, the endpoints with pending deliveries from a skip through
# deliveries_endpoint_due (one step each, a deleted endpoint's too, so they get cancelled), and
# each endpoint's earliest due deliveries, at most :limit, from the same index. SQLite is told
# which index (INDEXED BY): left to guess, it scans every pending row of deliveries_status.
_INFLIGHT = """
inflight AS (
    SELECT COALESCE(endpoint_id, url) AS destination, COUNT(*) AS n
    FROM deliveries INDEXED BY deliveries_leased
    WHERE status = 'pending' AND lease_expires_at > :now
    GROUP BY destination
)"""
_CAP = """CASE WHEN e.consecutive_failures >= :threshold THEN 1
             ELSE COALESCE(e.max_concurrency, :default_cap) END"""
_SENDS = """(e.endpoint_id IS NULL OR (e.enabled = 1 AND e.disabled_reason IS NULL
           AND COALESCE(e.circuit_open_until, 0) <= :now AND e.mode = 'push'))"""
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= :now)"
_LEASE = """
UPDATE deliveries SET lease_expires_at = :lease, lease_owner = :owner, updated_at = :now,
    attempts = attempts + 1
WHERE delivery_id IN (
    SELECT due.delivery_id FROM due LEFT JOIN inflight USING (destination)
    WHERE due.position <= due.cap - COALESCE(inflight.n, 0)
    ORDER BY due.next_attempt_at LIMIT :limit
)
RETURNING *
"""
CLAIM_DELIVERIES = (
    f"""
WITH RECURSIVE {_INFLIGHT},
destinations(endpoint_id) AS (
    SELECT MIN(endpoint_id) FROM deliveries INDEXED BY deliveries_endpoint_due
    WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT MIN(endpoint_id) FROM deliveries INDEXED BY deliveries_endpoint_due
            WHERE status = 'pending' AND endpoint_id > destinations.endpoint_id)
    FROM destinations WHERE endpoint_id IS NOT NULL
),
candidates AS (
    SELECT d.delivery_id, d.next_attempt_at, d.endpoint_id AS destination, {_CAP} AS cap
    FROM destinations t LEFT JOIN endpoints e ON e.endpoint_id = t.endpoint_id
    JOIN deliveries d ON d.delivery_id IN (
        SELECT delivery_id FROM deliveries INDEXED BY deliveries_endpoint_due
        WHERE endpoint_id = t.endpoint_id AND status = 'pending' AND next_attempt_at <= :now
          AND {_FREE}
        ORDER BY next_attempt_at LIMIT :limit)
    WHERE t.endpoint_id IS NOT NULL AND {_SENDS}
    UNION ALL
    SELECT delivery_id, next_attempt_at, url, :default_cap
    FROM deliveries INDEXED BY deliveries_endpoint_due
    WHERE endpoint_id IS NULL AND status = 'pending' AND next_attempt_at <= :now AND {_FREE}
),
due AS (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY destination ORDER BY next_attempt_at) AS position
    FROM candidates
)"""
    + _LEASE
)
"""The claim of what is due (the dispatcher's); ``scripts/bench_backlog.py`` shows its plan."""

_CLAIM_RUN_DELIVERIES = (
    f"""
WITH {_INFLIGHT},
due AS (
    SELECT d.delivery_id, d.next_attempt_at, COALESCE(d.endpoint_id, d.url) AS destination,
        ROW_NUMBER() OVER (
            PARTITION BY COALESCE(d.endpoint_id, d.url) ORDER BY d.next_attempt_at
        ) AS position,
        {_CAP} AS cap
    FROM deliveries d LEFT JOIN endpoints e ON e.endpoint_id = d.endpoint_id
    WHERE d.run_id = :run_id AND d.status = 'pending' AND d.next_attempt_at <= :now
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= :now) AND {_SENDS}
)"""
    + _LEASE
)
"""The claim of one run's fresh deliveries, found by their run."""

# Tries left open on a delivery whose lease ran out: the process sending them stopped.
_SETTLE_ABANDONED_ATTEMPTS = (
    "UPDATE attempts SET error = :unknown WHERE "
    + sql.ATTEMPT_OPEN
    + " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.delivery_id = attempts.delivery_id"
    " AND COALESCE(d.lease_expires_at, 0) <= :now)"
)


class DeliveryVerbs(Database):
    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            insert_deliveries(conn, run_id, deliveries, now)

        await self.writer.submit(job)
        self._changed(delivery_enqueued=[d.delivery_id for d in deliveries])

    async def claim_deliveries(
        self,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: base.ClaimPolicy,
        run_id: str | None = None,
    ) -> list[models.Delivery]:
        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            if run_id is None:  # a run's fresh deliveries have no earlier try to settle
                conn.execute(
                    _SETTLE_ABANDONED_ATTEMPTS,
                    {"now": now, "unknown": base.ATTEMPT_OUTCOME_UNKNOWN},
                )
            with closing(
                conn.execute(
                    CLAIM_DELIVERIES if run_id is None else _CLAIM_RUN_DELIVERIES,
                    {
                        "now": now,
                        "lease": now + lease_seconds,
                        "limit": limit,
                        "threshold": policy.circuit_failure_threshold,
                        "default_cap": policy.max_concurrency,
                        "run_id": run_id,
                        "owner": self.owner,
                    },
                )
            ) as cursor:
                claimed = list(cursor.fetchall())
            # Each try is on record before its request leaves, in the claim's own commit.
            insert_started_attempts(conn, claimed, now)
            return claimed

        claimed = [rows.delivery(row) for row in await self.writer.submit(job)]
        self._changed(delivery_claimed=[d.delivery_id for d in claimed])
        return sorted(claimed, key=lambda d: d.next_attempt_at or 0)

    async def renew_delivery_leases(self, delivery_ids: Sequence[str], until: float) -> list[str]:
        # A lease released meanwhile (the try recorded, or deferred) stays released.
        return await self._renew(
            "deliveries",
            "delivery_id",
            "status = 'pending' AND lease_expires_at IS NOT NULL",
            delivery_ids,
            until,
        )

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            started = conn.execute(
                "DELETE FROM attempts WHERE delivery_id = ? AND "
                + sql.ATTEMPT_OPEN
                + " AND attempt ="
                " (SELECT attempts FROM deliveries WHERE delivery_id = ? AND status = 'pending')",
                (delivery_id, delivery_id),
            ).rowcount
            conn.execute(
                "UPDATE deliveries SET next_attempt_at = ?, lease_expires_at = NULL,"
                " attempts = attempts - ? WHERE delivery_id = ? AND status = 'pending'",
                (until, started, delivery_id),
            )

        await self.writer.submit(job)
        self._changed(delivery_deferred=[delivery_id])

    async def record_attempt(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        def job(conn: sqlite3.Connection) -> base.HealthChange | None:
            return record_outcome(conn, delivery, outcome)

        change = await self.writer.submit(job)
        self._attempted(delivery, change)
        return change

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        row = await self._write_one(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
            " WHERE delivery_id = ? RETURNING *",
            (now, now, delivery_id),
        )
        if row is None:
            return None
        self._changed(delivery_due=[delivery_id])
        return rows.delivery(row)

    async def replay_deliveries(self, selection: base.DeliverySelection, now: float) -> int:
        where = chosen_by(selection)
        count = await self._write_count(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
            f" WHERE {where}",
            (now, now, *where.params),
        )
        if count:
            self._changed(delivery_due=None)
        return count

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None:
        row = await self._fetchone("SELECT * FROM deliveries WHERE delivery_id = ?", (delivery_id,))
        return rows.delivery(row) if row else None

    async def list_deliveries(
        self,
        selection: base.DeliverySelection,
        limit: int = 100,
        after: base.Position | None = None,
    ) -> list[models.Delivery]:
        where = chosen_by(selection)
        page = sql.newest_first(where, "created_at", "delivery_id", after, limit)
        found = await self._fetchall("SELECT * FROM deliveries" + page, where.params)
        return [rows.delivery(row) for row in found]

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]:
        found = await self._fetchall(
            "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY attempt_id", (delivery_id,)
        )
        return [rows.attempt(row) for row in found]

    async def delivery_backlog(self, now: float) -> tuple[int, float | None]:
        row = await self._fetchone(
            "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at <= ? THEN next_attempt_at END)"
            " FROM deliveries WHERE status = 'pending'",
            (now,),
        )
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def next_due_at(self) -> float | None:
        # The first unleased one in deliveries_due order, or a lease that ends later: it
        # reads the rows in flight and the first due one, not the backlog.
        # (SQLite's two-argument MIN is NULL if either is: hence the COALESCEs.)
        row = await self._fetchone(
            "WITH first AS (SELECT"
            " (SELECT next_attempt_at FROM deliveries INDEXED BY deliveries_due"
            "   WHERE status = 'pending' AND lease_expires_at IS NULL AND " + sql.PUSHED + ""
            "   ORDER BY next_attempt_at LIMIT 1) AS free,"
            " (SELECT MIN(MAX(next_attempt_at, lease_expires_at))"
            "   FROM deliveries INDEXED BY deliveries_leased"
            "   WHERE status = 'pending' AND lease_expires_at IS NOT NULL AND " + sql.PUSHED + ""
            " ) AS leased)"
            " SELECT MIN(COALESCE(free, leased), COALESCE(leased, free)) FROM first"
        )
        return None if row is None or row[0] is None else float(row[0])


def insert_deliveries(
    conn: sqlite3.Connection,
    run_id: str | None,
    deliveries: Sequence[models.NewDelivery],
    now: float,
) -> None:
    conn.executemany(
        "INSERT INTO deliveries (delivery_id, run_id, endpoint_id, url, event_type, payload,"
        " status, attempts, next_attempt_at, created_at, updated_at, origin_at, headers)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)",
        rows.new_delivery_values(run_id, deliveries, now),
    )


def insert_started_attempts(
    conn: sqlite3.Connection, claimed: Sequence[sqlite3.Row], now: float
) -> None:
    """The try each claimed delivery starts, on record before its request leaves."""
    conn.executemany(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
        " response_headers, response_body) VALUES (?, ?, ?, 0, '{}', x'')",
        [(row["delivery_id"], row["attempts"], now) for row in claimed],
    )


def record_outcome(
    conn: sqlite3.Connection, delivery: models.Delivery, outcome: base.AttemptOutcome
) -> base.HealthChange | None:
    """Store the outcome of try ``delivery.attempts``, the delivery's new state and its
    endpoint's health, releasing the lease (``record_attempt``, and a pull consumer's ack)."""
    result = outcome.result
    ended_at = result.started_at + result.duration_ms / 1000
    of_delivery, of_attempt = rows.outcome_values(delivery, outcome)
    row = one(
        conn,
        "UPDATE deliveries SET status = ?, next_attempt_at = ?,"
        " lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ?"
        " WHERE delivery_id = ? RETURNING attempts",
        of_delivery,
    )
    if row is None:
        return None
    # The try the claim started; one already settled as unknown takes its real outcome.
    conn.execute(
        "UPDATE attempts SET started_at = ?, duration_ms = ?, status_code = ?,"
        " response_headers = ?, response_body = ?, error = ?"
        " WHERE delivery_id = ? AND attempt = ? AND status_code IS NULL"
        " AND (error IS NULL OR error = ?)",
        of_attempt,
    )
    if delivery.endpoint_id is None or outcome.health is None:
        return None
    return _update_health(conn, delivery.endpoint_id, outcome, ended_at)


def _update_health(
    conn: sqlite3.Connection, endpoint_id: str, outcome: base.AttemptOutcome, now: float
) -> base.HealthChange | None:
    """Move the endpoint's failure streak (outbox/health.py decides) in the attempt's transaction."""
    row = one(
        conn,
        "SELECT consecutive_failures, failing_since, circuit_open_until, disabled_reason"
        " FROM endpoints WHERE endpoint_id = ?",
        (endpoint_id,),
    )
    if row is None:
        return None
    changed, change = health.after_attempt(health.Health(*row), outcome, now)
    if changed is not None:
        conn.execute(
            "UPDATE endpoints SET consecutive_failures = ?, failing_since = ?,"
            " circuit_open_until = ?, disabled_reason = ? WHERE endpoint_id = ?",
            (
                changed.consecutive_failures,
                changed.failing_since,
                changed.circuit_open_until,
                changed.disabled_reason,
                endpoint_id,
            ),
        )
    return change


def chosen_by(selection: base.DeliverySelection) -> sql.Where:
    """The deliveries ``selection`` picks."""
    return sql.deliveries(sql.Where(sql.qmark), selection)
