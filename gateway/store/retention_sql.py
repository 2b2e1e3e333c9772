"""The SQL of retention, which both backends speak alike (written with PostgreSQL's ``$n``;
SQLite takes the same numbers as ``?n``). Each ``EXPIRED_*`` query lists a batch of the rows
``prune`` deletes: ``$1`` is the cutoff, ``$2`` the batch size. PostgreSQL appends its row
locks; SQLite's single writer needs none.
"""

from __future__ import annotations

from gateway.store.retention import Cutoffs

_SETTLED = "d.status <> 'pending' AND d.updated_at < {}"
_FINISHED = (
    "r.status NOT IN ('pending', 'running') AND r.ended_at < {}"
    " AND (r.thread_id IS NULL"
    " OR NOT EXISTS (SELECT 1 FROM threads t WHERE t.thread_id = r.thread_id))"
)
_RUN_GONE = "tr.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = tr.run_id)"
_ACCEPTED = "tr.verification NOT LIKE 'rejected%' AND tr.received_at < {}"
_REJECTED = "tr.verification LIKE 'rejected%' AND tr.received_at < {}"
_EXPIRED_THREAD = (
    "t.expires_at < {} AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id"
    " AND r.status IN ('pending', 'running'))"
)
_SURPLUS = (
    "SELECT capture_id FROM (SELECT capture_id, row_number() OVER"
    " (PARTITION BY bin_id ORDER BY capture_id DESC) AS newer FROM bin_requests) ranked"
    " WHERE newer > {}"
)

EXPIRED_DELIVERIES = (
    f"SELECT delivery_id FROM deliveries d WHERE {_SETTLED.format('$1')}"
    " ORDER BY updated_at LIMIT $2"
)
"""Settled deliveries; their attempts go with them."""
EXPIRED_EVENTS = (
    "SELECT e.id FROM events e JOIN runs r ON r.run_id = e.run_id"
    f" WHERE {_FINISHED.format('$1')} LIMIT $2"
)
EXPIRED_RUNS = (
    f"SELECT run_id FROM runs r WHERE {_FINISHED.format('$1')}"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.run_id = r.run_id)"
    " ORDER BY ended_at LIMIT $2"
)
"""Finished runs no delivery refers to any more; their events and filtered routes go too."""
EXPIRED_TRIGGERS = (
    f"SELECT trigger_id FROM triggers tr WHERE {_ACCEPTED.format('$1')} AND ({_RUN_GONE})"
    " ORDER BY received_at LIMIT $2"
)
EXPIRED_REJECTED = (
    f"SELECT trigger_id FROM triggers tr WHERE {_REJECTED.format('$1')}"
    " ORDER BY received_at LIMIT $2"
)
SURPLUS_CAPTURES = f"{_SURPLUS.format('$1')} LIMIT $2"
"""Captures beyond each bin's newest ``$1``."""
EXPIRED_THREADS = (
    f"SELECT thread_id FROM threads t WHERE {_EXPIRED_THREAD.format('$1')}"
    " ORDER BY expires_at LIMIT $2"
)
"""Threads whose ttl ended (``$1`` is now) and that run nothing; their runs, events and states
go with them, as ``delete_thread`` does."""

# A run is counted once its deliveries would have gone, a trigger once its run would have.
_RUN_GOES = (
    f"{_FINISHED.format('$1')} AND NOT EXISTS (SELECT 1 FROM deliveries d"
    f" WHERE d.run_id = r.run_id AND NOT ({_SETTLED.format('$2')}))"
)
COUNT_PRUNABLE = (
    "SELECT"
    f" (SELECT COUNT(*) FROM deliveries d WHERE {_SETTLED.format('$2')}) AS deliveries,"
    " (SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.delivery_id = a.delivery_id"
    f" WHERE {_SETTLED.format('$2')}) AS attempts,"
    " (SELECT COUNT(*) FROM events e JOIN runs r ON r.run_id = e.run_id"
    f" WHERE {_FINISHED.format('$3')}) AS events,"
    f" (SELECT COUNT(*) FROM runs r WHERE {_RUN_GOES}) AS runs,"
    f" (SELECT COUNT(*) FROM triggers tr WHERE {_ACCEPTED.format('$4')} AND ({_RUN_GONE}"
    f" OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = tr.run_id AND {_RUN_GOES})))"
    " AS triggers,"
    f" (SELECT COUNT(*) FROM triggers tr WHERE {_REJECTED.format('$5')}) AS rejected_triggers,"
    f" (SELECT COUNT(*) FROM ({_SURPLUS.format('$6')}) c) AS captures,"
    f" (SELECT COUNT(*) FROM threads t WHERE {_EXPIRED_THREAD.format('$7')}) AS threads"
)
"""What ``prune`` repeated would delete, by kind; its parameters are ``count_params``."""


def count_params(cutoffs: Cutoffs) -> tuple[float | int, ...]:
    return (
        cutoffs.runs,
        cutoffs.deliveries,
        cutoffs.events,
        cutoffs.triggers,
        cutoffs.rejected,
        cutoffs.bin_keep,
        cutoffs.now,
    )
