"""Retention on PostgreSQL: batched deletes of what has expired (gateway/store/retention.py).

Each batch is one short transaction that locks only the rows it deletes (``FOR UPDATE SKIP
LOCKED``), so processes pruning at once split the work, and a row changed meanwhile (a
delivery replayed) is re-checked under its lock and kept. Migration 0013 holds the indexes the
searches below walk: settled deliveries and finished runs by age, threads by expiry.
"""

from __future__ import annotations

from gateway.store.postgres.pool import Database
from gateway.store.retention import Cutoffs, Pruned

# Each predicate's parameter is its cutoff, always $1.
_SETTLED = "d.status <> 'pending' AND d.updated_at < $1"
_FINISHED = (
    "r.status NOT IN ('pending', 'running') AND r.ended_at < $1"
    " AND (r.thread_id IS NULL"
    " OR NOT EXISTS (SELECT 1 FROM threads t WHERE t.thread_id = r.thread_id))"
)
_RUN_GONE = "tr.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = tr.run_id)"
_ACCEPTED = "tr.verification NOT LIKE 'rejected%' AND tr.received_at < $1"
_REJECTED = "tr.verification LIKE 'rejected%' AND tr.received_at < $1"
_EXPIRED_THREAD = (
    "t.expires_at < $1 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id"
    " AND r.status IN ('pending', 'running'))"
)
_RANKED_CAPTURES = (
    "SELECT capture_id FROM (SELECT capture_id, row_number() OVER"
    " (PARTITION BY bin_id ORDER BY capture_id DESC) AS newer FROM bin_requests) ranked"
    " WHERE newer > $1"
)


class PruneVerbs(Database):
    async def prune(self, cutoffs: Cutoffs, batch: int) -> Pruned:
        deliveries, attempts = await self._prune_deliveries(cutoffs.deliveries, batch)
        events = await self._delete(
            "events",
            "id",
            f"SELECT e.id FROM events e JOIN runs r ON r.run_id = e.run_id WHERE {_FINISHED}"
            " LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
            cutoffs.events,
            batch,
        )
        runs, their_events = await self._prune_runs(cutoffs.runs, batch)
        return Pruned(
            deliveries=deliveries,
            attempts=attempts,
            events=events + their_events,
            runs=runs,
            triggers=await self._delete(
                "triggers",
                "trigger_id",
                f"SELECT trigger_id FROM triggers tr WHERE {_ACCEPTED} AND ({_RUN_GONE})"
                " ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                cutoffs.triggers,
                batch,
            ),
            rejected_triggers=await self._delete(
                "triggers",
                "trigger_id",
                f"SELECT trigger_id FROM triggers tr WHERE {_REJECTED}"
                " ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                cutoffs.rejected,
                batch,
            ),
            captures=await self._delete(
                "bin_requests",
                "capture_id",
                f"{_RANKED_CAPTURES} LIMIT $2",
                cutoffs.bin_keep,
                batch,
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

    async def _prune_deliveries(self, cutoff: float, batch: int) -> tuple[int, int]:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "WITH doomed AS (SELECT delivery_id FROM deliveries d"
                f" WHERE {_SETTLED} ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED),"
                " tries AS (DELETE FROM attempts a USING doomed"
                " WHERE a.delivery_id = doomed.delivery_id RETURNING 1),"
                " gone AS (DELETE FROM deliveries d USING doomed"
                " WHERE d.delivery_id = doomed.delivery_id RETURNING 1)"
                " SELECT (SELECT COUNT(*) FROM gone) AS deliveries,"
                " (SELECT COUNT(*) FROM tries) AS attempts",
                cutoff,
                batch,
            )
        assert row is not None
        return int(row["deliveries"]), int(row["attempts"])

    async def _prune_runs(self, cutoff: float, batch: int) -> tuple[int, int]:
        """Finished runs no delivery refers to any more, with their events and filtered routes;
        how many runs and events."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "WITH doomed AS (SELECT run_id FROM runs r WHERE"
                f" {_FINISHED} AND NOT EXISTS (SELECT 1 FROM deliveries d"
                " WHERE d.run_id = r.run_id) ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED),"
                " events_gone AS (DELETE FROM events e USING doomed WHERE e.run_id = doomed.run_id"
                " RETURNING 1),"
                " routes_gone AS (DELETE FROM filtered_routes f USING doomed"
                " WHERE f.run_id = doomed.run_id),"
                " gone AS (DELETE FROM runs r USING doomed WHERE r.run_id = doomed.run_id"
                " RETURNING 1) SELECT (SELECT COUNT(*) FROM gone) AS runs,"
                " (SELECT COUNT(*) FROM events_gone) AS events",
                cutoff,
                batch,
            )
        assert row is not None
        return int(row["runs"]), int(row["events"])

    async def _prune_threads(self, now: float, batch: int) -> int:
        """Threads whose ``ttl`` ran out and that run nothing now, as ``delete_thread`` does."""
        async with self._transaction() as conn:
            doomed = [
                row["thread_id"]
                for row in await conn.fetch(
                    f"SELECT thread_id FROM threads t WHERE {_EXPIRED_THREAD}"
                    " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    now,
                    batch,
                )
            ]
            if not doomed:
                return 0
            await conn.execute(
                "DELETE FROM events WHERE run_id IN"
                " (SELECT run_id FROM runs WHERE thread_id = ANY($1::text[]))",
                doomed,
            )
            await conn.execute("DELETE FROM runs WHERE thread_id = ANY($1::text[])", doomed)
            await conn.execute(
                "DELETE FROM thread_states WHERE thread_id = ANY($1::text[])", doomed
            )
            await conn.execute("DELETE FROM threads WHERE thread_id = ANY($1::text[])", doomed)
            await self._changed(conn, thread_changed=doomed)
        return len(doomed)

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        """Counted as ``prune`` repeated would delete: a run goes once its deliveries have,
        a trigger once its run has."""
        settled = _SETTLED.replace("$1", "$2")
        run_goes = (
            f"{_FINISHED} AND NOT EXISTS (SELECT 1 FROM deliveries d"
            f" WHERE d.run_id = r.run_id AND NOT ({settled}))"
        )
        row = await self._fetchrow(
            "SELECT"
            f" (SELECT COUNT(*) FROM deliveries d WHERE {settled}) AS deliveries,"
            " (SELECT COUNT(*) FROM attempts a JOIN deliveries d"
            f" ON d.delivery_id = a.delivery_id WHERE {settled}) AS attempts,"
            " (SELECT COUNT(*) FROM events e JOIN runs r ON r.run_id = e.run_id"
            f" WHERE {_FINISHED.replace('$1', '$3')}) AS events,"
            f" (SELECT COUNT(*) FROM runs r WHERE {run_goes}) AS runs,"
            " (SELECT COUNT(*) FROM triggers tr"
            f" WHERE {_ACCEPTED.replace('$1', '$4')} AND ({_RUN_GONE}"
            f" OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = tr.run_id AND {run_goes})))"
            " AS triggers,"
            f" (SELECT COUNT(*) FROM triggers tr WHERE {_REJECTED.replace('$1', '$5')})"
            " AS rejected_triggers,"
            f" (SELECT COUNT(*) FROM ({_RANKED_CAPTURES.replace('$1', '$6')}) c) AS captures,"
            f" (SELECT COUNT(*) FROM threads t WHERE {_EXPIRED_THREAD.replace('$1', '$7')})"
            " AS threads",
            cutoffs.runs,
            cutoffs.deliveries,
            cutoffs.events,
            cutoffs.triggers,
            cutoffs.rejected,
            cutoffs.bin_keep,
            cutoffs.now,
        )
        assert row is not None
        return Pruned(**{name: int(value) for name, value in row.items()})
