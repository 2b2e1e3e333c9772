"""Retention on SQLite: what has expired (gateway/store/retention.py), deleted in batches.

Each kind's batch is one job of the group-committing writer, so ingest waits behind one small
delete at most, never behind a whole prune. After the deletes, one more job hands the freed
pages back to the file system (``auto_vacuum = INCREMENTAL``), so the file shrinks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store import retention_sql as sql
from gateway.store.retention import Cutoffs, Pruned
from gateway.store.sqlite.connection import Database, marks

PAGES_A_JOB = 1024
"""Pages one job gives back (4 MiB of the default page size), so it holds the writer briefly."""


def _sqlite(text: str) -> str:
    """A shared statement with SQLite's numbered placeholders (``?1`` for ``$1``)."""
    return text.replace("$", "?")


class PruneVerbs(Database):
    async def prune(self, cutoffs: Cutoffs, batch: int) -> Pruned:
        deliveries, attempts = await self.writer.submit(
            lambda conn: _delete_deliveries(conn, cutoffs.deliveries, batch)
        )
        events = await self._delete("events", "id", sql.EXPIRED_EVENTS, cutoffs.events, batch)
        runs, their_events = await self.writer.submit(
            lambda conn: _delete_runs(conn, cutoffs.runs, batch)
        )
        pruned = Pruned(
            deliveries=deliveries,
            attempts=attempts,
            events=events + their_events,
            runs=runs,
            triggers=await self._delete(
                "triggers", "trigger_id", sql.EXPIRED_TRIGGERS, cutoffs.triggers, batch
            ),
            rejected_triggers=await self._delete(
                "triggers", "trigger_id", sql.EXPIRED_REJECTED, cutoffs.rejected, batch
            ),
            captures=await self._delete(
                "bin_requests", "capture_id", sql.SURPLUS_CAPTURES, cutoffs.bin_keep, batch
            ),
            threads=await self.writer.submit(
                lambda conn: _delete_threads(conn, cutoffs.now, batch)
            ),
        )
        if pruned.total:
            while await self.writer.submit(_give_back_free_pages) == PAGES_A_JOB:
                pass
        return pruned

    async def _delete(self, table: str, key: str, doomed: str, cutoff: Any, batch: int) -> int:
        statement = _sqlite(f"DELETE FROM {table} WHERE {key} IN ({doomed})")
        return await self.writer.submit(
            lambda conn: conn.execute(statement, (cutoff, batch)).rowcount
        )

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        row = await self._fetchone(_sqlite(sql.COUNT_PRUNABLE), sql.count_params(cutoffs))
        assert row is not None
        return Pruned(**{name: int(n) for name, n in zip(row.keys(), row, strict=True)})


def _ids(conn: sqlite3.Connection, doomed: str, params: Sequence[Any]) -> list[Any]:
    return [row[0] for row in conn.execute(_sqlite(doomed), params).fetchall()]


def _delete_deliveries(conn: sqlite3.Connection, cutoff: float, batch: int) -> tuple[int, int]:
    ids = _ids(conn, sql.EXPIRED_DELIVERIES, (cutoff, batch))
    if not ids:
        return 0, 0
    tries = conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({marks(len(ids))})", ids)
    gone = conn.execute(f"DELETE FROM deliveries WHERE delivery_id IN ({marks(len(ids))})", ids)
    return gone.rowcount, tries.rowcount


def _delete_runs(conn: sqlite3.Connection, cutoff: float, batch: int) -> tuple[int, int]:
    ids = _ids(conn, sql.EXPIRED_RUNS, (cutoff, batch))
    if not ids:
        return 0, 0
    listed = marks(len(ids))
    events = conn.execute(f"DELETE FROM events WHERE run_id IN ({listed})", ids)
    conn.execute(f"DELETE FROM filtered_routes WHERE run_id IN ({listed})", ids)
    gone = conn.execute(f"DELETE FROM runs WHERE run_id IN ({listed})", ids)
    return gone.rowcount, events.rowcount


def _delete_threads(conn: sqlite3.Connection, now: float, batch: int) -> int:
    ids = _ids(conn, sql.EXPIRED_THREADS, (now, batch))
    if not ids:
        return 0
    listed = marks(len(ids))
    conn.execute(
        f"DELETE FROM events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id IN ({listed}))",
        ids,
    )
    conn.execute(f"DELETE FROM runs WHERE thread_id IN ({listed})", ids)
    conn.execute(f"DELETE FROM thread_states WHERE thread_id IN ({listed})", ids)
    return conn.execute(f"DELETE FROM threads WHERE thread_id IN ({listed})", ids).rowcount


def _give_back_free_pages(conn: sqlite3.Connection) -> int:
    """Up to ``PAGES_A_JOB`` free pages back to the file system; how many. A page a statement:
    Python's driver steps a statement that returns no rows once, and each step frees one."""
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    pages = min(int(free), PAGES_A_JOB)
    for _ in range(pages):
        conn.execute("PRAGMA incremental_vacuum(1)")
    return pages
