"""LangGraph threads, their states and crons on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from gateway import models
from gateway.store import rows, sql, thread_store
from gateway.store.changes import created_kinds
from gateway.store.sqlite.connection import Database, insert, one
from gateway.store.sqlite.runs import insert_run, merge_thread_metadata

# Every (key, value) of the wanted object is in the row's metadata. Keys are matched as the
# JSON text both sides were written with (``fullkey``), never parsed as a path, so any key
# (quotes, backslashes, NUL, dots, brackets) means itself; values match by JSON type (numbers
# as numbers) and value. The filter is one parameter, however many keys it has.
_JSON_KIND = "CASE {0}.type WHEN 'integer' THEN 'real' ELSE {0}.type END"
_METADATA_CONTAINS = (
    "NOT EXISTS (SELECT 1 FROM json_each({}) AS wanted WHERE NOT EXISTS ("
    " SELECT 1 FROM json_each(metadata) AS have WHERE have.fullkey = wanted.fullkey"
    f" AND {_JSON_KIND.format('have')} = {_JSON_KIND.format('wanted')}"
    " AND have.value IS wanted.value))"
)


class ThreadVerbs(Database):
    async def create_thread(
        self, thread: models.Thread, if_exists: str
    ) -> tuple[models.Thread, bool]:
        def job(conn: sqlite3.Connection) -> bool:
            found = one(conn, "SELECT 1 FROM threads WHERE thread_id = ?", (thread.thread_id,))
            if found is not None:
                return False
            conn.execute(
                f"INSERT INTO threads ({rows.THREAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows.thread_values(thread),
            )
            return True

        created = await self.writer.submit(job)
        if created:
            self._changed(thread_changed=[thread.thread_id])
        stored = await self.get_thread(thread.thread_id)
        assert stored is not None
        return stored, created

    async def get_thread(self, thread_id: str) -> models.Thread | None:
        row = await self._fetchone(f"{sql.THREADS} WHERE thread_id = ?", (thread_id,))
        return rows.thread(row) if row else None

    async def update_thread(
        self, thread_id: str, metadata: Mapping[str, Any], now: float, ttl: dict[str, Any] | None
    ) -> models.Thread | None:
        def job(conn: sqlite3.Connection) -> bool:
            return merge_thread_metadata(conn, thread_id, metadata, now, ttl)

        if not await self.writer.submit(job):
            return None
        self._changed(thread_changed=[thread_id])
        return await self.get_thread(thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)",
                (thread_id,),
            )
            conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM thread_states WHERE thread_id = ?", (thread_id,))
            cursor = conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
            return cursor.rowcount > 0

        deleted = await self.writer.submit(job)
        if deleted:
            self._changed(thread_changed=[thread_id])
        return deleted

    async def search_threads(self, search: thread_store.ThreadSearch) -> list[models.Thread]:
        where = _thread_filters(search)
        order = sql.order_by(search.sort_by, search.sort_order, sql.THREAD_SORTS, "thread_id")
        found = await self._fetchall(
            f"SELECT * FROM ({sql.THREADS}) WHERE {where} ORDER BY {order}"
            f" LIMIT {where.param(search.limit)} OFFSET {where.param(search.offset)}",
            where.params,
        )
        return [rows.thread(row) for row in found]

    async def count_threads(self, search: thread_store.ThreadSearch) -> int:
        where = _thread_filters(search)
        row = await self._fetchone(
            f"SELECT COUNT(*) FROM ({sql.THREADS}) WHERE {where}", where.params
        )
        return int(row[0]) if row else 0

    async def list_checkpoints(self, thread_id: str) -> list[models.Checkpoint]:
        values = await self._fetchall(
            "SELECT e.id, e.run_id, e.data, e.created_at FROM events e"
            " JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = ? AND e.event = 'values' ORDER BY e.id",
            (thread_id,),
        )
        outputs = await self._fetchall(
            "SELECT run_id, output, ended_at FROM runs WHERE thread_id = ? AND status = 'success'"
            " AND output IS NOT NULL AND output != 'null'",
            (thread_id,),
        )
        states = await self._fetchall(
            "SELECT * FROM thread_states WHERE thread_id = ?", (thread_id,)
        )
        return rows.checkpoints(thread_id, values, outputs, states)

    async def add_thread_state(
        self, thread_id: str, checkpoint_id: str, values: Any, as_node: str | None, now: float
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO thread_states (checkpoint_id, thread_id, state_values, as_node,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (checkpoint_id, thread_id, rows.dumps(values), as_node, now),
            )
            conn.execute("UPDATE threads SET updated_at = ? WHERE thread_id = ?", (now, thread_id))

        await self.writer.submit(job)
        self._changed(thread_changed=[thread_id])

    async def list_thread_runs(
        self, thread_id: str, limit: int, offset: int, status: str | None
    ) -> list[models.Run]:
        clause, params = ("", ()) if status is None else (" AND status = ?", (status,))
        found = await self._fetchall(
            f"SELECT * FROM runs WHERE thread_id = ?{clause}"
            " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?",
            (thread_id, *params, limit, offset),
        )
        return [rows.run(row) for row in found]

    async def inflight_runs(self, thread_id: str | None) -> list[models.Run]:
        of_thread = "" if thread_id is None else " AND thread_id = ?"
        found = await self._fetchall(
            "SELECT * FROM runs WHERE status IN ('pending', 'running')"
            + of_thread
            + " ORDER BY created_at, run_id",
            () if thread_id is None else (thread_id,),
        )
        return [rows.run(row) for row in found]

    async def delete_run(self, run_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            cursor = conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            return cursor.rowcount > 0

        deleted = await self.writer.submit(job)
        if deleted:
            self._changed(run_deleted=[run_id])
        return deleted

    async def list_thread_events(self, thread_id: str, after_id: int) -> list[models.Event]:
        found = await self._fetchall(
            "SELECT e.* FROM events e JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = ? AND e.id > ? ORDER BY e.id",
            (thread_id, after_id),
        )
        return [rows.event(row) for row in found]

    async def create_cron(self, cron: models.Cron) -> models.Cron:
        columns = rows.cron_columns(cron)

        def job(conn: sqlite3.Connection) -> None:
            insert(conn, "crons", columns)

        await self.writer.submit(job)
        self._changed(cron_changed=[cron.cron_id])
        return cron

    async def get_cron(self, cron_id: str) -> models.Cron | None:
        row = await self._fetchone("SELECT * FROM crons WHERE cron_id = ?", (cron_id,))
        return rows.cron(row) if row else None

    async def update_cron(
        self, cron_id: str, changes: Mapping[str, Any], now: float
    ) -> models.Cron | None:
        values = rows.cron_changes(changes, now)
        columns = ", ".join(f"{name} = ?" for name in values)
        row = await self._write_one(
            f"UPDATE crons SET {columns} WHERE cron_id = ? RETURNING *",
            (*values.values(), cron_id),
        )
        if row is None:
            return None
        self._changed(cron_changed=[cron_id])
        return rows.cron(row)

    async def delete_cron(self, cron_id: str) -> bool:
        deleted = await self._write_count("DELETE FROM crons WHERE cron_id = ?", (cron_id,))
        if deleted:
            self._changed(cron_changed=[cron_id])
        return deleted > 0

    async def search_crons(self, search: thread_store.CronSearch) -> list[models.Cron]:
        where = _cron_filters(search)
        order = sql.order_by(search.sort_by, search.sort_order, sql.CRON_SORTS, "cron_id")
        found = await self._fetchall(
            f"SELECT * FROM crons WHERE {where} ORDER BY {order}"
            f" LIMIT {where.param(search.limit)} OFFSET {where.param(search.offset)}",
            where.params,
        )
        return [rows.cron(row) for row in found]

    async def count_crons(self, search: thread_store.CronSearch) -> int:
        where = _cron_filters(search)
        row = await self._fetchone(f"SELECT COUNT(*) FROM crons WHERE {where}", where.params)
        return int(row[0]) if row else 0

    async def due_crons(self, now: float, limit: int) -> list[models.Cron]:
        found = await self._fetchall(
            "SELECT * FROM crons WHERE enabled = 1 AND next_run_date <= ?"
            " ORDER BY next_run_date LIMIT ?",
            (now, limit),
        )
        return [rows.cron(row) for row in found]

    async def fire_cron(self, firing: thread_store.CronFiring, now: float) -> models.Run | None:
        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            cursor = conn.execute(
                "UPDATE crons SET next_run_date = COALESCE(?, next_run_date), enabled = ?,"
                " updated_at = ? WHERE cron_id = ? AND enabled = 1 AND next_run_date = ?",
                (
                    firing.next_run_date,
                    int(firing.next_run_date is not None),
                    now,
                    firing.cron_id,
                    firing.due,
                ),
            )
            if cursor.rowcount == 0:
                return None
            return insert_run(conn, firing.run, now, None)

        row = await self.writer.submit(job)
        if row is None:
            return None
        run = rows.run(row)
        self._changed(cron_changed=[firing.cron_id], **created_kinds(run, now))
        return run


def _metadata_filters(where: sql.Where, metadata: Mapping[str, Any]) -> sql.Where:
    if metadata:
        where.add(_METADATA_CONTAINS.format(where.param(rows.dumps(dict(metadata)))))
    return where


def _thread_filters(search: thread_store.ThreadSearch) -> sql.Where:
    where = _metadata_filters(sql.Where(sql.qmark), search.metadata)
    if search.ids:
        where.add(
            f"thread_id IN (SELECT value FROM json_each({where.param(rows.dumps(list(search.ids)))}))"
        )
    where.equal("status", search.status)
    return where


def _cron_filters(search: thread_store.CronSearch) -> sql.Where:
    return sql.crons(_metadata_filters(sql.Where(sql.qmark), search.metadata), search)
