"""The ``/inspect`` read side and its bins on SQLite."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from typing import Any

from gateway import models
from gateway.store import base
from gateway.store.sqlite import rows
from gateway.store.sqlite.connection import Database
from gateway.store.sqlite.deliveries import selection_clauses

_BINS = (
    "SELECT b.*, (SELECT COUNT(*) FROM bin_requests r WHERE r.bin_id = b.bin_id) AS captures"
    " FROM bins b"
)


class InspectVerbs(Database):
    async def list_triggers(
        self, selection: base.TriggerSelection, limit: int = 50
    ) -> list[models.Trigger]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if selection.flow_id:
            clauses.append("flow_id = ?")
            params.append(selection.flow_id)
        if selection.before is not None:
            clauses.append("received_at < ?")
            params.append(selection.before)
        if selection.search:
            clauses.append(
                "instr(lower(flow_id || ' ' || trigger_id || ' ' || COALESCE(run_id, '') || ' '"
                " || verification || ' ' || method || ' ' || path || ' ' || CAST(body AS TEXT)),"
                " ?) > 0"
            )
            params.append(selection.search.lower())
        found = await self._fetchall(
            f"SELECT * FROM triggers WHERE {' AND '.join(clauses)}"
            " ORDER BY received_at DESC, trigger_id DESC LIMIT ?",
            (*params, limit),
        )
        return [rows.trigger(row) for row in found]

    async def list_runs(self, selection: base.RunSelection, limit: int = 50) -> list[models.Run]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (
            ("flow_id", selection.flow_id),
            ("status", selection.status.value if selection.status else None),
            ("trigger_id", selection.trigger_id),
        ):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if selection.search:
            clauses.append(
                "instr(lower(run_id || ' ' || flow_id || ' ' || status || ' '"
                " || COALESCE(thread_id, '') || ' ' || COALESCE(trigger_id, '')), ?) > 0"
            )
            params.append(selection.search.lower())
        found = await self._fetchall(
            f"SELECT * FROM runs WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [rows.run(row) for row in found]

    async def find_deliveries(
        self, selection: base.DeliverySelection, flow_id: str | None = None, limit: int = 50
    ) -> list[models.Delivery]:
        clauses, params = selection_clauses(selection)
        if flow_id:
            clauses.append("run_id IN (SELECT run_id FROM runs WHERE flow_id = ?)")
            params.append(flow_id)
        found = await self._fetchall(
            f"SELECT * FROM deliveries WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, delivery_id DESC LIMIT ?",
            (*params, limit),
        )
        return [rows.delivery(row) for row in found]

    async def inspect_counts(self, since: float) -> base.InspectCounts:
        runs = await self._fetchall("SELECT status, COUNT(*) FROM runs GROUP BY status")
        deliveries = await self._fetchall("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        row = await self._fetchone(
            "SELECT (SELECT COUNT(*) FROM triggers),"
            " (SELECT COUNT(*) FROM triggers WHERE received_at >= ?),"
            " (SELECT COUNT(*) FROM triggers WHERE received_at >= ?"
            "   AND verification LIKE 'rejected%'),"
            " (SELECT COUNT(*) FROM runs WHERE created_at >= ?),"
            " (SELECT COUNT(*) FROM attempts WHERE started_at >= ?),"
            " (SELECT COUNT(*) FROM attempts WHERE started_at >= ?"
            "   AND status_code BETWEEN 200 AND 299)",
            (since,) * 5,
        )
        assert row is not None
        return base.InspectCounts(
            triggers=row[0],
            triggers_since=row[1],
            rejected_since=row[2],
            runs={r[0]: r[1] for r in runs},
            runs_since=row[3],
            deliveries={r[0]: r[1] for r in deliveries},
            attempts_since=row[4],
            attempts_ok_since=row[5],
        )

    async def create_bin(self, bin: base.Bin) -> base.Bin:
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
        return bin

    async def get_bin(self, bin_id: str) -> base.Bin | None:
        row = await self._fetchone(f"{_BINS} WHERE b.bin_id = ?", (bin_id,))
        return rows.bin_(row) if row else None

    async def list_bins(self) -> list[base.Bin]:
        found = await self._fetchall(f"{_BINS} ORDER BY b.created_at DESC")
        return [rows.bin_(row) for row in found]

    async def update_bin(self, bin_id: str, changes: Mapping[str, Any]) -> base.Bin | None:
        unknown = set(changes) - set(base.BIN_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        if changes:
            columns = ", ".join(f"{name} = ?" for name in changes)
            await self._write_count(
                f"UPDATE bins SET {columns} WHERE bin_id = ?", (*changes.values(), bin_id)
            )
        return await self.get_bin(bin_id)

    async def delete_bin(self, bin_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM bin_requests WHERE bin_id = ?", (bin_id,))
            cursor = conn.execute("DELETE FROM bins WHERE bin_id = ?", (bin_id,))
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    async def capture_request(
        self, capture: base.CapturedRequest, keep: int
    ) -> base.CapturedRequest:
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

        return dataclasses.replace(capture, capture_id=await self.writer.submit(job))

    async def list_captures(
        self, bin_id: str | None, search: str | None = None, limit: int = 100
    ) -> list[base.CapturedRequest]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if bin_id is not None:
            clauses.append("bin_id = ?")
            params.append(bin_id)
        if search:
            clauses.append(
                "instr(lower(method || ' ' || path || ' ' || query || ' ' || headers || ' '"
                " || CAST(body AS TEXT)), ?) > 0"
            )
            params.append(search.lower())
        found = await self._fetchall(
            f"SELECT * FROM bin_requests WHERE {' AND '.join(clauses)}"
            " ORDER BY capture_id DESC LIMIT ?",
            (*params, limit),
        )
        return [rows.capture(row) for row in found]

    async def get_capture(self, capture_id: int) -> base.CapturedRequest | None:
        row = await self._fetchone("SELECT * FROM bin_requests WHERE capture_id = ?", (capture_id,))
        return rows.capture(row) if row else None
