"""The ``/inspect`` read side and its bins on SQLite."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from typing import Any

from gateway import models
from gateway.store import base, rows, sql
from gateway.store.sqlite.connection import Database

# Case-insensitive searches of each row's text: ``{}`` is the lowered needle.
_TRIGGER_TEXT = (
    "instr(lower(flow_id || ' ' || trigger_id || ' ' || COALESCE(run_id, '') || ' '"
    " || verification || ' ' || method || ' ' || path || ' ' || CAST(body AS TEXT)), {}) > 0"
)
_RUN_TEXT = (
    "instr(lower(run_id || ' ' || flow_id || ' ' || status || ' '"
    " || COALESCE(thread_id, '') || ' ' || COALESCE(trigger_id, '')), {}) > 0"
)
_CAPTURE_TEXT = (
    "instr(lower(method || ' ' || path || ' ' || query || ' ' || headers || ' '"
    " || CAST(body AS TEXT)), {}) > 0"
)
_TOTALS = (
    "SELECT (SELECT COUNT(*) FROM triggers),"
    " (SELECT COUNT(*) FROM triggers WHERE received_at >= ?),"
    " (SELECT COUNT(*) FROM triggers WHERE received_at >= ?"
    "   AND verification LIKE 'rejected%'),"
    " (SELECT COUNT(*) FROM runs WHERE created_at >= ?),"
    " (SELECT COUNT(*) FROM attempts WHERE started_at >= ?),"
    " (SELECT COUNT(*) FROM attempts WHERE started_at >= ?"
    "   AND status_code BETWEEN 200 AND 299)"
)


class InspectVerbs(Database):
    async def list_triggers(
        self,
        selection: base.TriggerSelection,
        limit: int = 50,
        after: base.Position | None = None,
    ) -> list[models.Trigger]:
        where = sql.triggers(sql.Where(sql.qmark), selection, _TRIGGER_TEXT)
        page = sql.newest_first(where, "received_at", "trigger_id", after, limit)
        found = await self._fetchall("SELECT * FROM triggers" + page, where.params)
        return [rows.trigger(row) for row in found]

    async def list_runs(
        self, selection: base.RunSelection, limit: int = 50, after: base.Position | None = None
    ) -> list[models.Run]:
        where = sql.runs(sql.Where(sql.qmark), selection, _RUN_TEXT)
        page = sql.newest_first(where, "created_at", "run_id", after, limit)
        found = await self._fetchall("SELECT * FROM runs" + page, where.params)
        return [rows.run(row) for row in found]

    async def inspect_counts(self, since: float) -> base.InspectCounts:
        runs = await self._fetchall("SELECT status, COUNT(*) FROM runs GROUP BY status")
        deliveries = await self._fetchall("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        totals = await self._fetchone(_TOTALS, (since,) * 5)
        assert totals is not None
        return rows.inspect_counts(totals, runs, deliveries)

    async def create_bin(self, bin: models.Bin) -> models.Bin:
        await self._write_count(
            "INSERT INTO bins (bin_id, name, reply_status, reply_delay, verify_with,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                bin.bin_id,
                bin.name,
                bin.reply_status,
                bin.reply_delay,
                bin.verify_with,
                bin.created_at,
            ),
        )
        self._changed(bin_changed=[bin.bin_id])
        return bin

    async def get_bin(self, bin_id: str) -> models.Bin | None:
        row = await self._fetchone(f"{sql.BINS} WHERE b.bin_id = ?", (bin_id,))
        return rows.bin_(row) if row else None

    async def list_bins(self) -> list[models.Bin]:
        found = await self._fetchall(f"{sql.BINS} ORDER BY b.created_at DESC")
        return [rows.bin_(row) for row in found]

    async def update_bin(self, bin_id: str, changes: Mapping[str, Any]) -> models.Bin | None:
        rows.settable(changes, base.BIN_SETTABLE)
        if changes:
            columns = ", ".join(f"{name} = ?" for name in changes)
            await self._write_count(
                f"UPDATE bins SET {columns} WHERE bin_id = ?", (*changes.values(), bin_id)
            )
            self._changed(bin_changed=[bin_id])
        return await self.get_bin(bin_id)

    async def delete_bin(self, bin_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM bin_requests WHERE bin_id = ?", (bin_id,))
            cursor = conn.execute("DELETE FROM bins WHERE bin_id = ?", (bin_id,))
            return cursor.rowcount > 0

        deleted = await self.writer.submit(job)
        if deleted:
            self._changed(bin_changed=[bin_id])
        return deleted

    async def open_session(self, session_hash: str, expires_at: float, now: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM inspect_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO inspect_sessions (session_id, expires_at) VALUES (?, ?)",
                (session_hash, expires_at),
            )

        await self.writer.submit(job)

    async def session_is_open(self, session_hash: str, now: float) -> bool:
        row = await self._fetchone(
            "SELECT 1 FROM inspect_sessions WHERE session_id = ? AND expires_at > ?",
            (session_hash, now),
        )
        return row is not None

    async def close_session(self, session_hash: str) -> None:
        await self._write_count(
            "DELETE FROM inspect_sessions WHERE session_id = ?", (session_hash,)
        )

    async def capture_request(
        self, capture: models.CapturedRequest, keep: int
    ) -> models.CapturedRequest:
        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO bin_requests (bin_id, received_at, method, path, query, headers,"
                " body, content_type, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    capture.bin_id,
                    capture.received_at,
                    capture.method,
                    capture.path,
                    capture.query,
                    rows.dumps(capture.headers),
                    capture.body,
                    capture.content_type,
                    capture.source,
                ),
            )
            capture_id = int(cursor.lastrowid or 0)
            conn.execute(  # ids are shared by all bins: count this bin's own
                "DELETE FROM bin_requests WHERE bin_id = ? AND capture_id < (SELECT capture_id"
                " FROM bin_requests WHERE bin_id = ? ORDER BY capture_id DESC LIMIT 1 OFFSET ?)",
                (capture.bin_id, capture.bin_id, max(keep - 1, 0)),
            )
            return capture_id

        capture_id = await self.writer.submit(job)
        self._changed(bin_captured=[capture.bin_id])
        return dataclasses.replace(capture, capture_id=capture_id)

    async def list_captures(
        self, bin_id: str | None, search: str | None = None, limit: int = 100
    ) -> list[models.CapturedRequest]:
        where = sql.captures(sql.Where(sql.qmark), bin_id, search, _CAPTURE_TEXT)
        found = await self._fetchall(
            f"SELECT * FROM bin_requests WHERE {where}"
            f" ORDER BY capture_id DESC LIMIT {where.param(limit)}",
            where.params,
        )
        return [rows.capture(row) for row in found]

    async def get_capture(self, capture_id: int) -> models.CapturedRequest | None:
        row = await self._fetchone("SELECT * FROM bin_requests WHERE capture_id = ?", (capture_id,))
        return rows.capture(row) if row else None
