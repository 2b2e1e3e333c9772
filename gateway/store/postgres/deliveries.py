"""The outbox on PostgreSQL: deliveries, their attempts, and the endpoint health they move."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gateway import models
from gateway.outbox import health
from gateway.store import base, rows, sql
from gateway.store.postgres.pool import DELIVERY_CLAIM_LOCK, SCHEMA_KEY, Connection, Database

# Fair claiming: each destination (an endpoint, or a per-run URL) gets at most its free
# concurrency, so one slow receiver cannot fill every slot. Paused, disabled and open-circuit
# endpoints are skipped; a tripped circuit past its cool-down lets one probe through.
# Claims take DELIVERY_CLAIM_LOCK first: the in-flight count each claim reads then includes the
# leases every earlier claim (of any process) committed, so a cap holds across processes.
# The conditions on `d` are repeated in `chosen` so that PostgreSQL re-checks them on a row
# that changed between the statement's snapshot and its lock.
# Its cost follows the destinations, not the backlog (migration 14): the leases in flight come
# from their own index, the endpoints with pending deliveries from a skip through
# deliveries_endpoint_due (one step each, a deleted endpoint's too, so they get cancelled), and
# each endpoint's earliest due deliveries, at most $3, from the same index.
_INFLIGHT = """
inflight AS (
    SELECT COALESCE(endpoint_id, url) AS destination, COUNT(*) AS n FROM deliveries
    WHERE status = 'pending' AND lease_expires_at > $1
    GROUP BY 1
)"""
_CAP = """CASE WHEN e.consecutive_failures >= $4 THEN 1
             ELSE COALESCE(e.max_concurrency, $5) END"""
_SENDS = """(e.endpoint_id IS NULL OR (e.enabled AND e.disabled_reason IS NULL
           AND COALESCE(e.circuit_open_until, 0) <= $1 AND e.mode = 'push'))"""
_LEASE = """,
chosen AS (
    SELECT d.delivery_id FROM deliveries d
    JOIN due ON due.delivery_id = d.delivery_id
    LEFT JOIN inflight ON inflight.destination = due.destination
    WHERE due.position <= due.cap - COALESCE(inflight.n, 0)
      AND d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $1)
    ORDER BY d.next_attempt_at LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries SET lease_expires_at = $2, updated_at = $1, attempts = deliveries.attempts + 1,
    lease_owner = $6
FROM chosen WHERE deliveries.delivery_id = chosen.delivery_id
RETURNING deliveries.*
"""
CLAIM_DELIVERIES = (
    f"""
WITH RECURSIVE {_INFLIGHT},
destinations(endpoint_id) AS (
    SELECT MIN(endpoint_id) FROM deliveries WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT MIN(endpoint_id) FROM deliveries
            WHERE status = 'pending' AND endpoint_id > destinations.endpoint_id)
    FROM destinations WHERE endpoint_id IS NOT NULL
),
candidates AS (
    SELECT d.delivery_id, d.next_attempt_at, t.endpoint_id AS destination, {_CAP} AS cap
    FROM destinations t LEFT JOIN endpoints e ON e.endpoint_id = t.endpoint_id
    CROSS JOIN LATERAL (
        SELECT delivery_id, next_attempt_at FROM deliveries
        WHERE endpoint_id = t.endpoint_id AND status = 'pending' AND next_attempt_at <= $1
          AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
        ORDER BY next_attempt_at LIMIT $3) d
    WHERE t.endpoint_id IS NOT NULL AND {_SENDS}
    UNION ALL
    SELECT delivery_id, next_attempt_at, url, $5 FROM deliveries
    WHERE endpoint_id IS NULL AND status = 'pending' AND next_attempt_at <= $1
      AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
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
    SELECT d.delivery_id, COALESCE(d.endpoint_id, d.url) AS destination,
        ROW_NUMBER() OVER (
            PARTITION BY COALESCE(d.endpoint_id, d.url) ORDER BY d.next_attempt_at
        ) AS position,
        {_CAP} AS cap
    FROM deliveries d LEFT JOIN endpoints e ON e.endpoint_id = d.endpoint_id
    WHERE d.run_id = $7 AND d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $1) AND {_SENDS}
)"""
    + _LEASE
)
"""The claim of one run's fresh deliveries, found by their run."""

# Tries left open on a delivery whose lease ran out: the process sending them stopped. Whatever
# holds the delivery now (a paused endpoint, a later retry), that try's outcome is unknown.
_SETTLE_ABANDONED_ATTEMPTS = """
UPDATE attempts AS a SET error = $2
FROM deliveries d
WHERE a.status_code IS NULL AND a.error IS NULL
  AND d.delivery_id = a.delivery_id AND COALESCE(d.lease_expires_at, 0) <= $1
"""


class DeliveryVerbs(Database):
    owner: str  # this process's name on its leases (PostgresStore sets it)

    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None:
        async with self._transaction() as conn:
            await insert_deliveries(conn, run_id, deliveries, now)
            await self._changed(conn, delivery_enqueued=[d.delivery_id for d in deliveries])

    async def claim_deliveries(
        self,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: base.ClaimPolicy,
        run_id: str | None = None,
    ) -> list[models.Delivery]:
        async with self._transaction() as conn:
            await conn.execute(
                f"SELECT pg_advisory_xact_lock($1, {SCHEMA_KEY})", DELIVERY_CLAIM_LOCK
            )
            if run_id is None:  # a run's fresh deliveries have no earlier try to settle
                await conn.execute(_SETTLE_ABANDONED_ATTEMPTS, now, base.ATTEMPT_OUTCOME_UNKNOWN)
            arguments = (
                now,
                now + lease_seconds,
                limit,
                policy.circuit_failure_threshold,
                policy.max_concurrency,
                self.owner,
            )
            if run_id is None:
                claimed = await conn.fetch(CLAIM_DELIVERIES, *arguments)
            else:
                claimed = await conn.fetch(_CLAIM_RUN_DELIVERIES, *arguments, run_id)
            # Each try is on record before its request leaves, in the claim's own commit.
            await conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
                " response_headers, response_body) VALUES ($1, $2, $3, 0, '{}', '')",
                [(row["delivery_id"], row["attempts"], now) for row in claimed],
            )
            await self._changed(conn, delivery_claimed=[row["delivery_id"] for row in claimed])
        return sorted((rows.delivery(row) for row in claimed), key=lambda d: d.next_attempt_at or 0)

    async def renew_delivery_leases(self, delivery_ids: Sequence[str], until: float) -> list[str]:
        # A lease released meanwhile (the try recorded, or deferred) stays released.
        if not delivery_ids:
            return []
        renewed = await self._write(
            "UPDATE deliveries SET lease_expires_at = $1 WHERE delivery_id = ANY($2::text[])"
            " AND status = 'pending' AND lease_owner = $3 AND lease_expires_at IS NOT NULL"
            " RETURNING delivery_id",
            until,
            list(delivery_ids),
            self.owner,
        )
        return [row["delivery_id"] for row in renewed]

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        async with self._transaction() as conn:
            attempt = await conn.fetchval(
                "SELECT attempts FROM deliveries WHERE delivery_id = $1 AND status = 'pending'"
                " FOR UPDATE",
                delivery_id,
            )
            if attempt is None:
                return
            # The try the claim started never left: it goes, and its count with it.
            started = await conn.fetchval(
                "WITH gone AS (DELETE FROM attempts WHERE delivery_id = $1 AND attempt = $2"
                f" AND {sql.ATTEMPT_OPEN} RETURNING 1) SELECT COUNT(*) FROM gone",
                delivery_id,
                attempt,
            )
            await conn.execute(
                "UPDATE deliveries SET next_attempt_at = $1, lease_expires_at = NULL,"
                " attempts = attempts - $2 WHERE delivery_id = $3",
                until,
                started,
                delivery_id,
            )
            await self._changed(conn, delivery_deferred=[delivery_id])

    async def record_attempt(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        async with self._transaction() as conn:
            return await record_outcome(conn, delivery, outcome, self._changed)

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        found = await self._write(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1"
            " WHERE delivery_id = $2 RETURNING *",
            now,
            delivery_id,
            announce="delivery_due",
        )
        return rows.delivery(found[0]) if found else None

    async def replay_deliveries(self, selection: base.DeliverySelection, now: float) -> int:
        where = chosen_by(selection, start=2)
        async with self._transaction() as conn:
            status = await conn.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1"
                f" WHERE {where}",
                now,
                *where.params,
            )
            count = int(status.split()[-1])
            if count:
                await self._changed(conn, delivery_due=None)
        return count

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None:
        row = await self._fetchrow("SELECT * FROM deliveries WHERE delivery_id = $1", delivery_id)
        return rows.delivery(row) if row else None

    async def list_deliveries(
        self,
        selection: base.DeliverySelection,
        limit: int = 100,
        after: base.Position | None = None,
    ) -> list[models.Delivery]:
        where = chosen_by(selection)
        page = sql.newest_first(where, "created_at", "delivery_id", after, limit)
        found = await self._fetch("SELECT * FROM deliveries" + page, *where.params)
        return [rows.delivery(row) for row in found]

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]:
        found = await self._fetch(
            "SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY attempt_id", delivery_id
        )
        return [rows.attempt(row) for row in found]

    async def delivery_backlog(self, now: float) -> tuple[int, float | None]:
        row = await self._fetchrow(
            "SELECT COUNT(*), MIN(next_attempt_at) FILTER (WHERE next_attempt_at <= $1)"
            " FROM deliveries WHERE status = 'pending'",
            now,
        )
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def next_due_at(self) -> float | None:
        # The first unleased one in deliveries_due order, or a lease that ends later: it
        # reads the rows in flight and the first due one, not the backlog.
        value = await self._fetchval(
            "SELECT LEAST((SELECT next_attempt_at FROM deliveries"
            "   WHERE status = 'pending' AND lease_expires_at IS NULL AND " + sql.PUSHED + ""
            "   ORDER BY next_attempt_at LIMIT 1),"
            " (SELECT MIN(GREATEST(next_attempt_at, lease_expires_at)) FROM deliveries"
            "   WHERE status = 'pending' AND lease_expires_at IS NOT NULL AND " + sql.PUSHED + "))"
        )
        return None if value is None else float(value)


async def insert_deliveries(
    conn: Connection,
    run_id: str | None,
    deliveries: Sequence[models.NewDelivery],
    now: float,
) -> None:
    if not deliveries:
        return
    await conn.executemany(
        "INSERT INTO deliveries (delivery_id, run_id, endpoint_id, url, event_type, payload,"
        " status, attempts, next_attempt_at, created_at, updated_at, origin_at, headers)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $10, $11)",
        rows.new_delivery_values(run_id, deliveries, now),
    )


async def record_outcome(
    conn: Connection,
    delivery: models.Delivery,
    outcome: base.AttemptOutcome,
    changed: Callable[..., Awaitable[None]],
) -> base.HealthChange | None:
    """Store the outcome of try ``delivery.attempts``, the delivery's new state and its
    endpoint's health, releasing the lease, and announce it with ``changed`` (the store's
    ``_changed``): ``record_attempt``, and a pull consumer's ack."""
    result = outcome.result
    ended_at = result.started_at + result.duration_ms / 1000
    of_delivery, of_attempt = rows.outcome_values(delivery, outcome)
    attempts = await conn.fetchval(
        "UPDATE deliveries SET status = $1, next_attempt_at = $2,"
        " lease_expires_at = NULL, last_status_code = $3, last_error = $4, updated_at = $5"
        " WHERE delivery_id = $6 RETURNING attempts",
        *of_delivery,
    )
    if attempts is None:
        return None
    # The try the claim started; one already settled as unknown takes its real outcome,
    # so a slow sender's late outcome lands on its own try, not on a later one.
    await conn.execute(
        "UPDATE attempts SET started_at = $1, duration_ms = $2, status_code = $3,"
        " response_headers = $4, response_body = $5, error = $6"
        " WHERE delivery_id = $7 AND attempt = $8 AND status_code IS NULL"
        " AND (error IS NULL OR error = $9)",
        *of_attempt,
    )
    change = None
    if delivery.endpoint_id is not None and outcome.health is not None:
        change = await _update_health(conn, delivery.endpoint_id, outcome, ended_at)
    await changed(
        conn,
        delivery_attempted=[delivery.delivery_id],
        endpoint_changed=[delivery.endpoint_id] if change and delivery.endpoint_id else [],
    )
    return change


async def _update_health(
    conn: Connection, endpoint_id: str, outcome: base.AttemptOutcome, now: float
) -> base.HealthChange | None:
    """Move the endpoint's failure streak in the attempt's transaction. The row lock makes
    attempts of N processes on one endpoint count one after another, none lost."""
    row = await conn.fetchrow(
        "SELECT consecutive_failures, failing_since, circuit_open_until, disabled_reason"
        " FROM endpoints WHERE endpoint_id = $1 FOR UPDATE",
        endpoint_id,
    )
    if row is None:
        return None
    current = health.Health(
        row["consecutive_failures"],
        row["failing_since"],
        row["circuit_open_until"],
        row["disabled_reason"],
    )
    changed, change = health.after_attempt(current, outcome, now)
    if changed is not None:
        await conn.execute(
            "UPDATE endpoints SET consecutive_failures = $1, failing_since = $2,"
            " circuit_open_until = $3, disabled_reason = $4 WHERE endpoint_id = $5",
            changed.consecutive_failures,
            changed.failing_since,
            changed.circuit_open_until,
            changed.disabled_reason,
            endpoint_id,
        )
    return change


def chosen_by(selection: base.DeliverySelection, start: int = 1) -> sql.Where:
    """The deliveries ``selection`` picks, its parameters numbered from ``$start``."""
    return sql.deliveries(sql.Where(sql.dollar, start), selection)
