"""Retention on PostgreSQL: batched deletes of what has expired (gateway/store/retention.py).

Each batch is one short transaction that locks only the rows it deletes (``FOR UPDATE SKIP
LOCKED``), so processes pruning at once split the work, and a row changed meanwhile (a
delivery replayed) is re-checked under its lock and kept. Migration 0013 holds the indexes the
searches walk: settled deliveries and finished runs by age, threads by expiry.
"""

from __future__ import annotations

from gateway.store import retention_sql as sql
from gateway.store.postgres.pool import Connection, Database
from gateway.store.retention import Cutoffs, Pruned

LOCKED = " FOR UPDATE SKIP LOCKED"


class PruneVerbs(Database):
    async def prune(self, cutoffs: Cutoffs, batch: int) -> Pruned:
        async with self._transaction() as conn:
            doomed = await _ids(conn, sql.EXPIRED_DELIVERIES + LOCKED, cutoffs.deliveries, batch)
            attempts = await _delete(conn, "attempts", "delivery_id", doomed)
            deliveries = await _delete(conn, "deliveries", "delivery_id", doomed)
        events = await self._delete(
            "events",
            "id",
            f"{sql.EXPIRED_EVENTS} FOR UPDATE OF e SKIP LOCKED",
            cutoffs.events,
            batch,
        )
        async with self._transaction() as conn:
            doomed = await _ids(conn, sql.EXPIRED_RUNS + LOCKED, cutoffs.runs, batch)
            events += await _delete(conn, "events", "run_id", doomed)
            await _delete(conn, "filtered_routes", "run_id", doomed)
            runs = await _delete(conn, "runs", "run_id", doomed)
        return Pruned(
            deliveries=deliveries,
            attempts=attempts,
            events=events,
            runs=runs,
            triggers=await self._delete(
                "triggers", "trigger_id", sql.EXPIRED_TRIGGERS + LOCKED, cutoffs.triggers, batch
            ),
            rejected_triggers=await self._delete(
                "triggers", "trigger_id", sql.EXPIRED_REJECTED + LOCKED, cutoffs.rejected, batch
            ),
            captures=await self._delete(
                "bin_requests", "capture_id", sql.SURPLUS_CAPTURES, cutoffs.bin_keep, batch
            ),
            threads=await self._prune_threads(cutoffs.now, batch),
        )

    async def _delete(self, table: str, key: str, doomed: str, cutoff: object, batch: int) -> int:
        """Delete the rows of ``table`` whose ``key`` the ``doomed`` query lists; how many."""
        async with self._transaction() as conn:
            status = await conn.execute(
                f"DELETE FROM {table} WHERE {key} IN ({doomed})", cutoff, batch
            )
        return int(status.split()[-1])

    async def _prune_threads(self, now: float, batch: int) -> int:
        async with self._transaction() as conn:
            doomed = await _ids(conn, sql.EXPIRED_THREADS + LOCKED, now, batch)
            if not doomed:
                return 0
            await conn.execute(
                "DELETE FROM events WHERE run_id IN"
                " (SELECT run_id FROM runs WHERE thread_id = ANY($1::text[]))",
                doomed,
            )
            await _delete(conn, "runs", "thread_id", doomed)
            await _delete(conn, "thread_states", "thread_id", doomed)
            await _delete(conn, "threads", "thread_id", doomed)
            await self._changed(conn, thread_changed=doomed)
        return len(doomed)

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        row = await self._fetchrow(sql.COUNT_PRUNABLE, *sql.count_params(cutoffs))
        assert row is not None
        return Pruned(**{name: int(value) for name, value in row.items()})


async def _ids(conn: Connection, doomed: str, cutoff: object, batch: int) -> list[str]:
    return [row[0] for row in await conn.fetch(doomed, cutoff, batch)]


async def _delete(conn: Connection, table: str, key: str, ids: list[str]) -> int:
    if not ids:
        return 0
    status = await conn.execute(f"DELETE FROM {table} WHERE {key} = ANY($1::text[])", ids)
    return int(status.split()[-1])
