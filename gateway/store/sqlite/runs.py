"""Triggers, runs and their event log on SQLite."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import Any

import structlog

from gateway import errors, models
from gateway.store import base, rows, sql
from gateway.store.changes import created_kinds, touched_thread
from gateway.store.retention import thread_expiry
from gateway.store.sqlite.connection import Database, marks, one, serve_file
from gateway.store.sqlite.deliveries import insert_deliveries
from gateway.store.sqlite.relay import insert_filtered

log = structlog.get_logger(__name__)

# Its first condition is the runs_open index's.
_CLAIM_RUNS = (
    "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_expires_at = ?,"
    " lease_owner = ?, started_at = COALESCE(started_at, ?), updated_at = ?"
    " WHERE run_id IN (SELECT run_id FROM runs"
    "   WHERE status IN ('pending', 'running')"
    "   AND ((status = 'pending' AND created_at <= ? AND " + sql.THREAD_IS_FREE + ")"
    "   OR (status = 'running' AND lease_expires_at <= ?))"
    "   ORDER BY created_at LIMIT ?)"
    " RETURNING *"
)

_THREAD_HAS_OPEN_RUN = (
    "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') LIMIT 1"
)

_THREAD_LAST_ENDED = "SELECT MAX(ended_at) FROM runs WHERE thread_id = ?"

EVENTS_PER_INSERT = 1000  # 4 parameters each, well under SQLite's 32,766

_DEDUP = (
    "SELECT r.* FROM triggers t JOIN runs r ON r.run_id = t.run_id"
    " WHERE t.flow_id = ? AND t.idempotency_key = ? AND t.received_at > ?"
    " ORDER BY t.received_at DESC LIMIT 1"
)


class RunVerbs(Database):
    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: base.NewRun, now: float
    ) -> tuple[models.Run, bool]:
        def job(conn: sqlite3.Connection) -> tuple[sqlite3.Row, bool]:
            # One writer runs jobs one at a time, so this check and the insert cannot interleave.
            if trigger.idempotency_key is not None:
                existing = one(
                    conn,
                    _DEDUP,
                    (
                        trigger.flow_id,
                        trigger.idempotency_key,
                        trigger.received_at - trigger.dedup_window,
                    ),
                )
                if existing is not None:
                    return existing, False
            insert_trigger(conn, trigger, run.run_id)
            return insert_run(conn, run, now, trigger.trigger_id, self.owner), True

        row, created = await self.writer.submit(job)
        stored = rows.inserted_run(row, run) if created else rows.run(row)
        if created:
            self._changed(trigger_created=[trigger.trigger_id], **created_kinds(stored, now))
        return stored, created

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        def job(conn: sqlite3.Connection) -> None:
            insert_trigger(conn, trigger, None)

        await self.writer.submit(job)
        self._changed(trigger_created=[trigger.trigger_id])

    async def create_run(self, run: base.NewRun, now: float) -> models.Run:
        def job(conn: sqlite3.Connection) -> sqlite3.Row:
            return insert_run(conn, run, now, None, self.owner)

        stored = rows.inserted_run(await self.writer.submit(job), run)
        self._changed(**created_kinds(stored, now), thread_changed=touched_thread(run))
        return stored

    async def get_run(self, run_id: str) -> models.Run | None:
        row = await self._fetchone("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return rows.run(row) if row else None

    async def get_trigger(self, trigger_id: str) -> models.Trigger | None:
        row = await self._fetchone("SELECT * FROM triggers WHERE trigger_id = ?", (trigger_id,))
        return rows.trigger(row) if row else None

    async def claim_runs(self, limit: int, now: float, lease_seconds: float) -> list[models.Run]:
        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            params = (now + lease_seconds, self.owner, now, now, now, now, limit)
            with closing(conn.execute(_CLAIM_RUNS, params)) as cursor:
                return list(cursor.fetchall())

        claimed = [rows.run(row) for row in await self.writer.submit(job)]
        self._changed(run_claimed=[run.run_id for run in claimed])
        return sorted(claimed, key=lambda run: run.created_at)

    async def finish_run(self, ending: base.RunEnding, now: float) -> base.RunEnded | None:
        def job(conn: sqlite3.Connection) -> base.RunEnded | None:
            row = one(
                conn,
                "UPDATE runs SET status = ?, output = ?, error = ?, ended_at = ?, updated_at = ?,"
                " lease_expires_at = NULL, lease_owner = ? WHERE run_id = ?"
                " AND status IN ('pending', 'running') RETURNING thread_id",
                (
                    ending.status.value,
                    rows.dumps(ending.output),
                    rows.dumps_or_none(ending.error),
                    now,
                    now,
                    self.owner,
                    ending.run_id,
                ),
            )
            if row is None:
                return None
            insert_deliveries(conn, ending.run_id, ending.deliveries, now)
            insert_filtered(conn, ending.filtered)
            event_ids = insert_events(conn, ending.run_id, ending.events, now)
            return base.RunEnded(ending.run_id, row[0], event_ids)

        ended = await self.writer.submit(job)
        if ended is None:
            return None
        self._changed(
            run_ended=[ended.run_id],
            event_appended=[ended.run_id] if ending.events else [],
            delivery_enqueued=[d.delivery_id for d in ending.deliveries],
            thread_freed=[ended.thread_id] if ended.thread_id else [],
        )
        return ended

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        if not run_ids:
            return

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, lease_owner = NULL,"
                " updated_at = ? WHERE run_id = ? AND status = 'running' AND lease_owner = ?",
                [(now, run_id, self.owner) for run_id in run_ids],
            )

        await self.writer.submit(job)
        self._changed(run_queued=run_ids)

    async def request_cancel(self, run_id: str, reason: str, now: float) -> models.Run | None:
        row = await self._write_one(
            "UPDATE runs SET cancel_reason = ?, updated_at = ?"
            " WHERE run_id = ? AND status IN ('pending', 'running') RETURNING *",
            (reason, now, run_id),
        )
        if row is None:
            return None
        self._changed(run_cancel_requested=[run_id])
        return rows.run(row)

    async def renew_run_leases(self, run_ids: Sequence[str], until: float) -> list[str]:
        return await self._renew("runs", "run_id", "status = 'running'", run_ids, until)

    async def take_over(self, now: float) -> int:
        alive = sorted(serve_file(self.path, self.owner))
        others = f"(lease_owner IS NULL OR lease_owner NOT IN ({marks(len(alive))}))"

        def job(conn: sqlite3.Connection) -> int:
            runs = conn.execute(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, lease_owner = NULL,"
                f" updated_at = ? WHERE status = 'running' AND {others}",
                (now, *alive),
            ).rowcount
            deliveries = conn.execute(
                "UPDATE deliveries SET lease_expires_at = NULL, lease_owner = NULL"
                f" WHERE status = 'pending' AND lease_expires_at IS NOT NULL AND {others}",
                alive,
            ).rowcount
            return runs + deliveries

        released = await self.writer.submit(job)
        if released:
            log.info("leases_taken_over", released=released, path=str(self.path))
        return released

    async def append_events(
        self, run_id: str, events: Sequence[base.NewEvent], now: float
    ) -> list[int]:
        def job(conn: sqlite3.Connection) -> list[int]:
            return insert_events(conn, run_id, events, now)

        event_ids = await self.writer.submit(job)
        self._changed(event_appended=[run_id])
        return event_ids

    async def list_events(self, run_id: str, after_id: int = 0) -> list[models.Event]:
        found = await self._fetchall(
            "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
        )
        return [rows.event(row) for row in found]


def insert_trigger(conn: sqlite3.Connection, trigger: models.Trigger, run_id: str | None) -> None:
    conn.execute(
        "INSERT INTO triggers (trigger_id, flow_id, received_at, method, path, query, headers,"
        " body, content_type, source, idempotency_key, run_id, verification)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.trigger_values(trigger, run_id),
    )


def insert_run(
    conn: sqlite3.Connection,
    run: base.NewRun,
    now: float,
    trigger_id: str | None,
    owner: str | None = None,
) -> sqlite3.Row:
    """``owner``: the lease's, for a run stored already claimed (``run.lease_until``); a run on
    a thread that has another open run is stored pending instead, to wait for its turn."""
    busy = run.thread_id is not None and (run.if_thread_idle or run.lease_until is not None)
    if busy and run.thread_id is not None:
        busy = one(conn, _THREAD_HAS_OPEN_RUN, (run.thread_id,)) is not None
        if busy and run.if_thread_idle:
            raise errors.Conflict(f"thread {run.thread_id} has a pending or running run")
    if busy:
        run = dataclasses.replace(run, lease_until=None)
    started_at = now
    if run.lease_until is not None and run.thread_id is not None:
        # It starts when the thread's last run ended, if that was after ``now`` was read.
        (ended,) = one(conn, _THREAD_LAST_ENDED, (run.thread_id,)) or (None,)
        started_at = max(now, ended or now)
    if run.thread_metadata is not None and run.thread_id is not None:
        merge_thread_metadata(conn, run.thread_id, run.thread_metadata, now)
    row = one(
        conn,
        "INSERT INTO runs (run_id, thread_id, flow_id, status, input, kwargs, metadata,"
        " created_at, updated_at, trigger_id, attempt, started_at, lease_expires_at,"
        " lease_owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        rows.new_run_values(run, now, trigger_id, owner, started_at),
    )
    assert row is not None
    return row


def merge_thread_metadata(
    conn: sqlite3.Connection,
    thread_id: str,
    metadata: Mapping[str, Any],
    now: float,
    ttl: dict[str, Any] | None = None,
) -> bool:
    """Merge ``metadata`` into the thread's (and set its ``ttl``); False if there is none."""
    row = one(conn, "SELECT metadata FROM threads WHERE thread_id = ?", (thread_id,))
    if row is None:
        return False
    merged = rows.dumps({**rows.loads(row[0]), **metadata})
    if ttl is None:
        conn.execute(
            "UPDATE threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
            (merged, now, thread_id),
        )
    else:
        conn.execute(
            "UPDATE threads SET metadata = ?, updated_at = ?, ttl = ?, expires_at = ?"
            " WHERE thread_id = ?",
            (merged, now, rows.dumps(ttl), thread_expiry(ttl), thread_id),
        )
    return True


def insert_events(
    conn: sqlite3.Connection, run_id: str, events: Sequence[base.NewEvent], now: float
) -> list[int]:
    """A statement per ``EVENTS_PER_INSERT``; their ids, in order."""
    ids: list[int] = []
    for start in range(0, len(events), EVENTS_PER_INSERT):
        chunk = events[start : start + EVENTS_PER_INSERT]
        values = ", ".join("(?, ?, ?, ?)" for _ in chunk)
        params = [value for name, data in chunk for value in (run_id, name, data, now)]
        sql_text = f"INSERT INTO events (run_id, event, data, created_at) VALUES {values}"
        with closing(conn.execute(sql_text + " RETURNING id", params)) as cursor:
            ids += sorted(row[0] for row in cursor.fetchall())
    return ids
