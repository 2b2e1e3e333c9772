"""LangGraph threads, their states and crons on PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import models
from gateway.store import rows, sql, thread_store
from gateway.store.changes import created_kinds
from gateway.store.postgres.pool import Database, assignments, placeholders
from gateway.store.postgres.runs import insert_run
from gateway.store.retention import thread_expiry


class ThreadVerbs(Database):
    async def create_thread(
        self, thread: models.Thread, if_exists: str
    ) -> tuple[models.Thread, bool]:
        inserted = await self._write(
            f"INSERT INTO threads ({rows.THREAD_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (thread_id) DO NOTHING"
            " RETURNING thread_id",
            *rows.thread_values(thread),
            announce="thread_changed",
        )
        stored = await self.get_thread(thread.thread_id)
        assert stored is not None
        return stored, bool(inserted)

    async def get_thread(self, thread_id: str) -> models.Thread | None:
        row = await self._fetchrow(f"{sql.THREADS} WHERE t.thread_id = $1", thread_id)
        return rows.thread(row) if row else None

    async def update_thread(
        self, thread_id: str, metadata: Mapping[str, Any], now: float, ttl: dict[str, Any] | None
    ) -> models.Thread | None:
        # jsonb's || merges in one statement, so concurrent updates of one thread lose no key.
        found = await self._write(
            "UPDATE threads SET metadata = metadata || $1::jsonb, updated_at = $2,"
            " ttl = COALESCE($3::json, ttl),"
            " expires_at = CASE WHEN $3::json IS NULL THEN expires_at ELSE $5 END"
            " WHERE thread_id = $4 RETURNING thread_id",
            rows.dumps(dict(metadata)),
            now,
            rows.dumps_or_none(ttl),
            thread_id,
            thread_expiry(ttl),
            announce="thread_changed",
        )
        if not found:
            return None
        return await self.get_thread(thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        async with self._transaction() as conn:
            await conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = $1)",
                thread_id,
            )
            await conn.execute("DELETE FROM runs WHERE thread_id = $1", thread_id)
            await conn.execute("DELETE FROM thread_states WHERE thread_id = $1", thread_id)
            status = await conn.execute("DELETE FROM threads WHERE thread_id = $1", thread_id)
            if status != "DELETE 0":
                await self._changed(conn, thread_changed=[thread_id])
        return status != "DELETE 0"

    async def search_threads(self, search: thread_store.ThreadSearch) -> list[models.Thread]:
        where = _thread_filters(search)
        order = sql.order_by(search.sort_by, search.sort_order, sql.THREAD_SORTS, "thread_id")
        found = await self._fetch(
            f"SELECT * FROM ({sql.THREADS}) s WHERE {where} ORDER BY {order}"
            f" LIMIT {where.param(search.limit)} OFFSET {where.param(search.offset)}",
            *where.params,
        )
        return [rows.thread(row) for row in found]

    async def count_threads(self, search: thread_store.ThreadSearch) -> int:
        where = _thread_filters(search)
        count = await self._fetchval(
            f"SELECT COUNT(*) FROM ({sql.THREADS}) s WHERE {where}", *where.params
        )
        return int(count)

    async def list_checkpoints(self, thread_id: str) -> list[models.Checkpoint]:
        values = await self._fetch(
            "SELECT e.id, e.run_id, e.data, e.created_at FROM events e"
            " JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = $1 AND e.event = 'values' ORDER BY e.id",
            thread_id,
        )
        outputs = await self._fetch(
            "SELECT run_id, output, ended_at FROM runs WHERE thread_id = $1"
            " AND status = 'success' AND output IS NOT NULL AND output::text <> 'null'",
            thread_id,
        )
        states = await self._fetch("SELECT * FROM thread_states WHERE thread_id = $1", thread_id)
        return rows.checkpoints(thread_id, values, outputs, states)

    async def add_thread_state(
        self, thread_id: str, checkpoint_id: str, values: Any, as_node: str | None, now: float
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO thread_states (checkpoint_id, thread_id, state_values, as_node,"
                " created_at) VALUES ($1, $2, $3, $4, $5)",
                checkpoint_id,
                thread_id,
                rows.dumps(values),
                as_node,
                now,
            )
            await conn.execute(
                "UPDATE threads SET updated_at = $1 WHERE thread_id = $2", now, thread_id
            )
            await self._changed(conn, thread_changed=[thread_id])

    async def list_thread_runs(
        self, thread_id: str, limit: int, offset: int, status: str | None
    ) -> list[models.Run]:
        found = await self._fetch(
            "SELECT * FROM runs WHERE thread_id = $1 AND ($2::text IS NULL OR status = $2::text)"
            " ORDER BY created_at DESC, run_id DESC LIMIT $3 OFFSET $4",
            thread_id,
            status,
            limit,
            offset,
        )
        return [rows.run(row) for row in found]

    async def inflight_runs(self, thread_id: str | None) -> list[models.Run]:
        of_thread = "" if thread_id is None else " AND thread_id = $1"
        found = await self._fetch(
            "SELECT * FROM runs WHERE status IN ('pending', 'running')"
            + of_thread
            + " ORDER BY created_at, run_id",
            *(() if thread_id is None else (thread_id,)),
        )
        return [rows.run(row) for row in found]

    async def delete_run(self, run_id: str) -> bool:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM events WHERE run_id = $1", run_id)
            status = await conn.execute("DELETE FROM runs WHERE run_id = $1", run_id)
            if status != "DELETE 0":
                await self._changed(conn, run_deleted=[run_id])
        return status != "DELETE 0"

    async def list_thread_events(self, thread_id: str, after_id: int) -> list[models.Event]:
        found = await self._fetch(
            "SELECT e.* FROM events e JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = $1 AND e.id > $2 ORDER BY e.id",
            thread_id,
            after_id,
        )
        return [rows.event(row) for row in found]

    async def create_cron(self, cron: models.Cron) -> models.Cron:
        columns = rows.cron_columns(cron)
        await self._write(
            f"INSERT INTO crons ({', '.join(columns)}) VALUES ({placeholders(1, len(columns))})"
            " RETURNING cron_id",
            *columns.values(),
            announce="cron_changed",
        )
        return cron

    async def get_cron(self, cron_id: str) -> models.Cron | None:
        row = await self._fetchrow("SELECT * FROM crons WHERE cron_id = $1", cron_id)
        return rows.cron(row) if row else None

    async def update_cron(
        self, cron_id: str, changes: Mapping[str, Any], now: float
    ) -> models.Cron | None:
        values = rows.cron_changes(changes, now)
        found = await self._write(
            f"UPDATE crons SET {assignments(list(values))}"
            f" WHERE cron_id = ${len(values) + 1} RETURNING *",
            *values.values(),
            cron_id,
            announce="cron_changed",
        )
        return rows.cron(found[0]) if found else None

    async def delete_cron(self, cron_id: str) -> bool:
        found = await self._write(
            "DELETE FROM crons WHERE cron_id = $1 RETURNING cron_id",
            cron_id,
            announce="cron_changed",
        )
        return bool(found)

    async def search_crons(self, search: thread_store.CronSearch) -> list[models.Cron]:
        where = _cron_filters(search)
        order = sql.order_by(search.sort_by, search.sort_order, sql.CRON_SORTS, "cron_id")
        found = await self._fetch(
            f"SELECT * FROM crons WHERE {where} ORDER BY {order}"
            f" LIMIT {where.param(search.limit)} OFFSET {where.param(search.offset)}",
            *where.params,
        )
        return [rows.cron(row) for row in found]

    async def count_crons(self, search: thread_store.CronSearch) -> int:
        where = _cron_filters(search)
        count = await self._fetchval(f"SELECT COUNT(*) FROM crons WHERE {where}", *where.params)
        return int(count)

    async def due_crons(self, now: float, limit: int) -> list[models.Cron]:
        found = await self._fetch(
            "SELECT * FROM crons WHERE enabled AND next_run_date <= $1"
            " ORDER BY next_run_date LIMIT $2",
            now,
            limit,
        )
        return [rows.cron(row) for row in found]

    async def fire_cron(self, firing: thread_store.CronFiring, now: float) -> models.Run | None:
        async with self._transaction() as conn:
            # A second scheduler's UPDATE waits on this row lock, then re-reads the row and
            # finds next_run_date moved: each due date fires once across processes.
            status = await conn.execute(
                "UPDATE crons SET next_run_date = COALESCE($1, next_run_date), enabled = $2,"
                " updated_at = $3 WHERE cron_id = $4 AND enabled AND next_run_date = $5",
                firing.next_run_date,
                firing.next_run_date is not None,
                now,
                firing.cron_id,
                firing.due,
            )
            if status == "UPDATE 0":
                return None
            run = rows.run(await insert_run(conn, firing.run, now, None))
            await self._changed(conn, cron_changed=[firing.cron_id], **created_kinds(run, now))
            return run


def _metadata_filters(where: sql.Where, metadata: Mapping[str, Any]) -> sql.Where:
    """Every (key, value) of ``metadata`` is in the row's. The key is a parameter of ``->``, so
    it means itself (quotes, backslashes, dots, brackets: never a path); ``jsonb`` equality
    compares by JSON type (true is not 1, null only matches a null, 1 matches 1.0). A NUL
    character, which no ``jsonb`` value can hold, matches nothing."""
    if _holds_nul(dict(metadata)):
        where.add("FALSE")
        return where
    for key, value in metadata.items():
        where.add(f"metadata -> {where.param(key)}::text = {where.param(rows.dumps(value))}::jsonb")
    return where


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def _thread_filters(search: thread_store.ThreadSearch) -> sql.Where:
    where = _metadata_filters(sql.Where(sql.dollar), search.metadata)
    if search.ids:
        where.add(f"thread_id = ANY({where.param(list(search.ids))}::text[])")
    where.equal("status", search.status)
    return where


def _cron_filters(search: thread_store.CronSearch) -> sql.Where:
    return sql.crons(_metadata_filters(sql.Where(sql.dollar), search.metadata), search)
