"""The ``/inspect`` read side and its bins on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway import models
from gateway.store import base, rows, sql
from gateway.store.postgres.pool import Database, assignments

# Case-insensitive searches of each row's text, with no LIKE wildcards in the needle: ``{}``
# is the lowered needle.
_TRIGGER_TEXT = (
    "strpos(lower(concat_ws(' ', flow_id, trigger_id, run_id, verification, method, path,"
    " hookgate_body_text(body))), {}) > 0"
)
_RUN_TEXT = "strpos(lower(concat_ws(' ', run_id, flow_id, status, thread_id, trigger_id)), {}) > 0"
_CAPTURE_TEXT = (
    "strpos(lower(concat_ws(' ', method, path, query, headers::text, hookgate_body_text(body))),"
    " {}) > 0"
)
_TOTALS = (
    "SELECT (SELECT COUNT(*) FROM triggers),"
    " (SELECT COUNT(*) FROM triggers WHERE received_at >= $1),"
    " (SELECT COUNT(*) FROM triggers WHERE received_at >= $1"
    "   AND verification LIKE 'rejected%'),"
    " (SELECT COUNT(*) FROM runs WHERE created_at >= $1),"
    " (SELECT COUNT(*) FROM attempts WHERE started_at >= $1),"
    " (SELECT COUNT(*) FROM attempts WHERE started_at >= $1"
    "   AND status_code BETWEEN 200 AND 299)"
)


class InspectVerbs(Database):
    async def list_triggers(
        self,
        selection: base.TriggerSelection,
        limit: int = 50,
        after: base.Position | None = None,
    ) -> list[models.Trigger]:
        where = sql.triggers(sql.Where(sql.dollar), selection, _TRIGGER_TEXT)
        page = sql.newest_first(where, "received_at", "trigger_id", after, limit)
        found = await self._fetch("SELECT * FROM triggers" + page, *where.params)
        return [rows.trigger(row) for row in found]

    async def list_runs(
        self, selection: base.RunSelection, limit: int = 50, after: base.Position | None = None
    ) -> list[models.Run]:
        where = sql.runs(sql.Where(sql.dollar), selection, _RUN_TEXT)
        page = sql.newest_first(where, "created_at", "run_id", after, limit)
        found = await self._fetch("SELECT * FROM runs" + page, *where.params)
        return [rows.run(row) for row in found]

    async def inspect_counts(self, since: float) -> base.InspectCounts:
        runs = await self._fetch("SELECT status, COUNT(*) FROM runs GROUP BY status")
        deliveries = await self._fetch("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        totals = await self._fetchrow(_TOTALS, since)
        assert totals is not None
        return rows.inspect_counts(totals, runs, deliveries)

    async def create_bin(self, bin: models.Bin) -> models.Bin:
        await self._write(
            "INSERT INTO bins (bin_id, name, reply_status, reply_delay, verify_with, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING bin_id",
            bin.bin_id,
            bin.name,
            bin.reply_status,
            bin.reply_delay,
            bin.verify_with,
            bin.created_at,
            announce="bin_changed",
        )
        return bin

    async def get_bin(self, bin_id: str) -> models.Bin | None:
        row = await self._fetchrow(f"{sql.BINS} WHERE b.bin_id = $1", bin_id)
        return rows.bin_(row) if row else None

    async def list_bins(self) -> list[models.Bin]:
        found = await self._fetch(f"{sql.BINS} ORDER BY b.created_at DESC, b.bin_id")
        return [rows.bin_(row) for row in found]

    async def update_bin(self, bin_id: str, changes: Mapping[str, Any]) -> models.Bin | None:
        rows.settable(changes, base.BIN_SETTABLE)
        if changes:
            await self._write(
                f"UPDATE bins SET {assignments(list(changes))} WHERE bin_id = ${len(changes) + 1}"
                " RETURNING bin_id",
                *changes.values(),
                bin_id,
                announce="bin_changed",
            )
        return await self.get_bin(bin_id)

    async def delete_bin(self, bin_id: str) -> bool:
        found = await self._write(
            "DELETE FROM bins WHERE bin_id = $1 RETURNING bin_id", bin_id, announce="bin_changed"
        )
        return bool(found)

    async def open_session(self, session_hash: str, expires_at: float, now: float) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM inspect_sessions WHERE expires_at <= $1", now)
            await conn.execute(
                "INSERT INTO inspect_sessions (session_id, expires_at) VALUES ($1, $2)",
                session_hash,
                expires_at,
            )

    async def session_is_open(self, session_hash: str, now: float) -> bool:
        found = await self._fetchval(
            "SELECT 1 FROM inspect_sessions WHERE session_id = $1 AND expires_at > $2",
            session_hash,
            now,
        )
        return found is not None

    async def close_session(self, session_hash: str) -> None:
        await self._write("DELETE FROM inspect_sessions WHERE session_id = $1", session_hash)

    async def capture_request(
        self, capture: models.CapturedRequest, keep: int
    ) -> models.CapturedRequest:
        async with self._transaction() as conn:
            capture_id = await conn.fetchval(
                "INSERT INTO bin_requests (bin_id, received_at, method, path, query, headers,"
                " body, content_type, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " RETURNING capture_id",
                capture.bin_id,
                capture.received_at,
                capture.method,
                capture.path,
                capture.query,
                rows.dumps(capture.headers),
                capture.body,
                capture.content_type,
                capture.source,
            )
            await conn.execute(
                "DELETE FROM bin_requests WHERE bin_id = $1 AND capture_id < ("
                " SELECT capture_id FROM bin_requests WHERE bin_id = $1"
                " ORDER BY capture_id DESC OFFSET $2 LIMIT 1)",
                capture.bin_id,
                max(keep - 1, 0),
            )
            await self._changed(conn, bin_captured=[capture.bin_id])
        return dataclasses.replace(capture, capture_id=int(capture_id))

    async def list_captures(
        self, bin_id: str | None, search: str | None = None, limit: int = 100
    ) -> list[models.CapturedRequest]:
        where = sql.captures(sql.Where(sql.dollar), bin_id, search, _CAPTURE_TEXT)
        found = await self._fetch(
            f"SELECT * FROM bin_requests WHERE {where}"
            f" ORDER BY capture_id DESC LIMIT {where.param(limit)}",
            *where.params,
        )
        return [rows.capture(row) for row in found]

    async def get_capture(self, capture_id: int) -> models.CapturedRequest | None:
        row = await self._fetchrow("SELECT * FROM bin_requests WHERE capture_id = $1", capture_id)
        return rows.capture(row) if row else None
