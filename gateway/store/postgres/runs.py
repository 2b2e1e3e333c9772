"""Triggers, runs and their event log on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gateway import errors, models
from gateway.store import base, rows, sql
from gateway.store.changes import created_kinds, touched_thread
from gateway.store.postgres.deliveries import insert_deliveries
from gateway.store.postgres.pool import Connection, Database, Record, keyed_lock
from gateway.store.postgres.relay import insert_filtered

_THREAD_HAS_OPEN_RUN = (
    "SELECT 1 FROM runs WHERE thread_id = $1 AND status IN ('pending', 'running') LIMIT 1"
)

_THREAD_LAST_ENDED = "SELECT MAX(ended_at) FROM runs WHERE thread_id = $1"

_CLAIM_RUNS = f"""
WITH chosen AS (
    SELECT run_id FROM runs
    WHERE status IN ('pending', 'running')
      AND ((status = 'pending' AND created_at <= $1 AND {sql.THREAD_IS_FREE})
           OR (status = 'running' AND lease_expires_at <= $1))
    ORDER BY created_at LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE runs SET status = 'running', attempt = attempt + 1, lease_expires_at = $2,
    lease_owner = $4, started_at = COALESCE(started_at, $1), updated_at = $1
FROM chosen WHERE runs.run_id = chosen.run_id
RETURNING runs.*
"""

_DEDUP = (
    "SELECT r.* FROM triggers t JOIN runs r ON r.run_id = t.run_id"
    " WHERE t.flow_id = $1 AND t.idempotency_key = $2 AND t.received_at > $3"
    " ORDER BY t.received_at DESC LIMIT 1"
)


class RunVerbs(Database):
    owner: str  # this process's name on its leases (PostgresStore sets it)

    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: base.NewRun, now: float
    ) -> tuple[models.Run, bool]:
        async with self._transaction() as conn:
            if trigger.idempotency_key is not None:
                # Writers of one (flow, key) queue here, so the check and the insert below are
                # one step for all processes; different keys do not wait for each other.
                await conn.execute(
                    keyed_lock("$1 || chr(31) || $2"),
                    trigger.flow_id,
                    trigger.idempotency_key,
                )
                existing = await conn.fetchrow(
                    _DEDUP,
                    trigger.flow_id,
                    trigger.idempotency_key,
                    trigger.received_at - trigger.dedup_window,
                )
                if existing is not None:
                    return rows.run(existing), False
            await insert_trigger(conn, trigger, run.run_id)
            inserted = await insert_run(conn, run, now, trigger.trigger_id, self.owner)
            stored = rows.inserted_run(inserted, run)
            await self._changed(
                conn, trigger_created=[trigger.trigger_id], **created_kinds(stored, now)
            )
            return stored, True

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        async with self._transaction() as conn:
            await insert_trigger(conn, trigger, None)
            await self._changed(conn, trigger_created=[trigger.trigger_id])

    async def create_run(self, run: base.NewRun, now: float) -> models.Run:
        async with self._transaction() as conn:
            stored = rows.inserted_run(await insert_run(conn, run, now, None, self.owner), run)
            await self._changed(
                conn, **created_kinds(stored, now), thread_changed=touched_thread(run)
            )
            return stored

    async def get_run(self, run_id: str) -> models.Run | None:
        row = await self._fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id)
        return rows.run(row) if row else None

    async def get_trigger(self, trigger_id: str) -> models.Trigger | None:
        row = await self._fetchrow("SELECT * FROM triggers WHERE trigger_id = $1", trigger_id)
        return rows.trigger(row) if row else None

    async def claim_runs(self, limit: int, now: float, lease_seconds: float) -> list[models.Run]:
        claimed = await self._write(
            _CLAIM_RUNS, now, now + lease_seconds, limit, self.owner, announce="run_claimed"
        )
        return sorted((rows.run(row) for row in claimed), key=lambda run: run.created_at)

    async def finish_run(self, ending: base.RunEnding, now: float) -> base.RunEnded | None:
        async with self._transaction() as conn:
            # The row lock makes a second finisher wait, then find the run ended: one ending,
            # one set of deliveries.
            row = await conn.fetchrow(
                "UPDATE runs SET status = $1, output = $2, error = $3, ended_at = $4,"
                " updated_at = $4, lease_expires_at = NULL, lease_owner = $6"
                " WHERE run_id = $5 AND status IN ('pending', 'running') RETURNING thread_id",
                ending.status.value,
                rows.dumps(ending.output),
                rows.dumps_or_none(ending.error),
                now,
                ending.run_id,
                self.owner,
            )
            if row is None:
                return None
            await insert_deliveries(conn, ending.run_id, ending.deliveries, now)
            await insert_filtered(conn, ending.filtered)
            event_ids = await insert_events(conn, ending.run_id, ending.events, now)
            ended = base.RunEnded(ending.run_id, row["thread_id"], event_ids)
            await self._changed(
                conn,
                run_ended=[ended.run_id],
                event_appended=[ended.run_id] if ending.events else [],
                delivery_enqueued=[d.delivery_id for d in ending.deliveries],
                thread_freed=[ended.thread_id] if ended.thread_id else [],
            )
            return ended

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        if not run_ids:
            return
        await self._write(
            "UPDATE runs SET status = 'pending', lease_expires_at = NULL, lease_owner = NULL,"
            " updated_at = $1 WHERE run_id = ANY($2::text[]) AND status = 'running'"
            " AND lease_owner = $3 RETURNING run_id",
            now,
            list(run_ids),
            self.owner,
            announce="run_queued",
        )

    async def request_cancel(self, run_id: str, reason: str, now: float) -> models.Run | None:
        found = await self._write(
            "UPDATE runs SET cancel_reason = $1, updated_at = $2"
            " WHERE run_id = $3 AND status IN ('pending', 'running') RETURNING *",
            reason,
            now,
            run_id,
            announce="run_cancel_requested",
        )
        return rows.run(found[0]) if found else None

    async def renew_run_leases(self, run_ids: Sequence[str], until: float) -> list[str]:
        if not run_ids:
            return []
        renewed = await self._write(
            "UPDATE runs SET lease_expires_at = $1 WHERE run_id = ANY($2::text[])"
            " AND status = 'running' AND lease_owner = $3 RETURNING run_id",
            until,
            list(run_ids),
            self.owner,
        )
        return [row["run_id"] for row in renewed]

    async def take_over(self, now: float) -> int:
        """Nothing to take: processes share the database, and a dead one's leases lapse."""
        return 0

    async def append_events(
        self, run_id: str, events: Sequence[base.NewEvent], now: float
    ) -> list[int]:
        async with self._transaction() as conn:
            event_ids = await insert_events(conn, run_id, events, now)
            await self._changed(conn, event_appended=[run_id])
            return event_ids

    async def list_events(self, run_id: str, after_id: int = 0) -> list[models.Event]:
        found = await self._fetch(
            "SELECT * FROM events WHERE run_id = $1 AND id > $2 ORDER BY id", run_id, after_id
        )
        return [rows.event(row) for row in found]


async def insert_trigger(conn: Connection, trigger: models.Trigger, run_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO triggers (trigger_id, flow_id, received_at, method, path, query, headers,"
        " body, content_type, source, idempotency_key, run_id, verification)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        *rows.trigger_values(trigger, run_id),
    )


async def insert_run(
    conn: Connection,
    run: base.NewRun,
    now: float,
    trigger_id: str | None,
    owner: str | None = None,
) -> Record:
    """``owner``: the lease's, for a run stored already claimed (``run.lease_until``); a run on
    a thread that has another open run is stored pending instead, to wait for its turn."""
    busy = run.thread_id is not None and (run.if_thread_idle or run.lease_until is not None)
    if busy:
        # Runs that need the thread idle queue here, so no two of them both find it idle.
        await conn.execute(keyed_lock("'thread' || chr(31) || $1"), run.thread_id)
        busy = bool(await conn.fetchval(_THREAD_HAS_OPEN_RUN, run.thread_id))
        if busy and run.if_thread_idle:
            raise errors.Conflict(f"thread {run.thread_id} has a pending or running run")
    if busy:
        run = dataclasses.replace(run, lease_until=None)
    started_at = now
    if run.lease_until is not None and run.thread_id is not None:
        # It starts when the thread's last run ended, if that was after ``now`` was read (a
        # transaction that waited for a connection or the thread's lock).
        ended = await conn.fetchval(_THREAD_LAST_ENDED, run.thread_id)
        started_at = max(now, ended or now)
    if run.thread_metadata is not None and run.thread_id is not None:
        # jsonb's || merges in one statement, so concurrent updates of one thread lose no key.
        await conn.execute(
            "UPDATE threads SET metadata = metadata || $1::jsonb, updated_at = $2"
            " WHERE thread_id = $3",
            rows.dumps(dict(run.thread_metadata)),
            now,
            run.thread_id,
        )
    row = await conn.fetchrow(
        "INSERT INTO runs (run_id, thread_id, flow_id, status, input, kwargs, metadata,"
        " created_at, updated_at, trigger_id, attempt, started_at, lease_expires_at, lease_owner)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *",
        *rows.new_run_values(run, now, trigger_id, owner, started_at),
    )
    assert row is not None
    return row


async def insert_events(
    conn: Connection, run_id: str, events: Sequence[base.NewEvent], now: float
) -> list[int]:
    """One statement for them all; their ids, in order."""
    if not events:
        return []
    found = await conn.fetch(
        "INSERT INTO events (run_id, event, data, created_at)"
        " SELECT $1, e.name, e.data::json, $4 FROM unnest($2::text[], $3::text[])"
        " WITH ORDINALITY AS e(name, data, n) ORDER BY e.n RETURNING id",
        run_id,
        [name for name, _ in events],
        [data for _, data in events],
        now,
    )
    return sorted(row["id"] for row in found)
