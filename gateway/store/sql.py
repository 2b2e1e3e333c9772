"""SQL both backends speak alike: the fragments they share, and WHERE clauses built the same
way on both but for the placeholder (``?`` on SQLite, ``$n`` on PostgreSQL). What the dialects
spell differently (JSON, text search, locking) stays in each backend's modules."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from gateway.store import base, thread_store

Mark = Callable[[int], str]
"""The placeholder of the n-th parameter (from 1)."""


def qmark(n: int) -> str:
    return "?"


def dollar(n: int) -> str:
    return f"${n}"


def migrations(package: str) -> list[Traversable]:
    """The ``NNNN_name.sql`` scripts of ``package``'s ``migrations`` folder, in order."""
    scripts = resources.files(package).joinpath("migrations").iterdir()
    return sorted(
        (path for path in scripts if path.name.endswith(".sql")), key=lambda path: path.name
    )


def version(script: Traversable) -> int:
    """The schema version a migration script brings: ``0003_….sql`` is version 3."""
    return int(script.name.split("_", 1)[0])


# A thread is busy while it has a pending or running run; otherwise its last ended run says
# how it is: success → idle, interrupted → interrupted, error or timeout → error.
THREADS = """
SELECT t.*, CASE
    WHEN EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                 AND r.status IN ('pending', 'running')) THEN 'busy'
    ELSE COALESCE((SELECT CASE r.status WHEN 'success' THEN 'idle'
                                        WHEN 'interrupted' THEN 'interrupted' ELSE 'error' END
                   FROM runs r WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
                   ORDER BY r.ended_at DESC LIMIT 1), 'idle')
    END AS status
FROM threads t
"""
# The columns searches may sort by, the default first.
THREAD_SORTS = ("updated_at", "thread_id", "status", "created_at")
CRON_SORTS = ("created_at", "cron_id", "thread_id", "next_run_date", "end_time", "updated_at")

# A pending run on a thread waits for the thread's running run and for every earlier pending
# one (LangGraph's multitask "enqueue": one run at a time per thread, first come first served).
# Under PostgreSQL's READ COMMITTED a claimer sees a run another claimer is taking as still
# pending, so the runs behind it stay blocked: the rule holds with N claimers.
THREAD_IS_FREE = (
    "(runs.thread_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs o"
    " WHERE o.thread_id = runs.thread_id AND o.run_id <> runs.run_id"
    " AND (o.status = 'running' OR (o.status = 'pending' AND (o.created_at < runs.created_at"
    " OR (o.created_at = runs.created_at AND o.run_id < runs.run_id))))))"
)

PUSHED = (
    "(endpoint_id IS NULL OR endpoint_id NOT IN"
    " (SELECT endpoint_id FROM endpoints WHERE mode = 'pull'))"
)
"""Deliveries the dispatcher sends: none of a pull endpoint's, which wait for a consumer."""

ATTEMPT_OPEN = "status_code IS NULL AND error IS NULL"
"""A try recorded as started whose outcome is not recorded yet (the index of migration 0008)."""

BINS = (
    "SELECT b.*, (SELECT COUNT(*) FROM bin_requests r WHERE r.bin_id = b.bin_id) AS captures"
    " FROM bins b"
)


def order_by(sort_by: str, sort_order: str, sorts: tuple[str, ...], tiebreak: str) -> str:
    """``column ASC|DESC, tiebreak``, the column one of ``sorts`` (the first unless ``sort_by``
    names another: never input as such)."""
    column = sort_by if sort_by in sorts else sorts[0]
    return f"{column} {'ASC' if sort_order == 'asc' else 'DESC'}, {tiebreak}"


class Where:
    """Conditions joined by AND, and their parameters in order."""

    def __init__(self, mark: Mark, start: int = 1) -> None:
        """``start``: the number of the first parameter (after those the statement already
        has)."""
        self.mark = mark
        self.start = start
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        """Add a parameter; its placeholder."""
        self.params.append(value)
        return self.mark(self.start + len(self.params) - 1)

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def equal(self, column: str, value: Any) -> None:
        """``column = value``, unless the value is None."""
        if value is not None:
            self.add(f"{column} = {self.param(value)}")

    def __str__(self) -> str:
        return " AND ".join(self.clauses) or "1 = 1"


def deliveries(where: Where, selection: base.DeliverySelection) -> Where:
    where.equal("run_id", selection.run_id)
    where.equal("endpoint_id", selection.endpoint_id)
    if selection.statuses:
        marks = ", ".join(where.param(status.value) for status in selection.statuses)
        where.add(f"status IN ({marks})")
    if selection.since is not None:
        where.add(f"created_at >= {where.param(selection.since)}")
    if selection.until is not None:
        where.add(f"created_at < {where.param(selection.until)}")
    if selection.flow_id:
        where.add(
            f"run_id IN (SELECT run_id FROM runs WHERE flow_id = {where.param(selection.flow_id)})"
        )
    return where


def newest_first(where: Where, at: str, key: str, after: base.Position | None, limit: int) -> str:
    """`` WHERE … ORDER BY at DESC, key DESC LIMIT n``: a page of a newest-first list, the rows
    sorting after ``after`` (keyset paging, ``base.Position``). The bound on ``at`` alone comes
    first so that each backend starts its scan of the ``(…, at, key)`` index (migration 14) at
    the position, however deep, rather than counting its way there as an offset would."""
    if after is not None:
        where.add(
            f"{at} <= {where.param(after.at)}"
            f" AND ({at} < {where.param(after.at)} OR {key} < {where.param(after.id)})"
        )
    return f" WHERE {where} ORDER BY {at} DESC, {key} DESC LIMIT {where.param(limit)}"


def triggers(where: Where, selection: base.TriggerSelection, contains: str) -> Where:
    """``contains``: the backend's case-insensitive search of a trigger's text, ``{}`` where
    the lowered needle goes."""
    where.equal("flow_id", selection.flow_id or None)
    if selection.search:
        where.add(contains.format(where.param(selection.search.lower())))
    return where


def runs(where: Where, selection: base.RunSelection, contains: str) -> Where:
    """``contains``: as for ``triggers``, over a run's ids and status."""
    where.equal("flow_id", selection.flow_id or None)
    where.equal("status", selection.status.value if selection.status else None)
    where.equal("trigger_id", selection.trigger_id or None)
    if selection.search:
        where.add(contains.format(where.param(selection.search.lower())))
    return where


def captures(where: Where, bin_id: str | None, search: str | None, contains: str) -> Where:
    """``contains``: as for ``triggers``, over a captured request's text."""
    where.equal("bin_id", bin_id)
    if search:
        where.add(contains.format(where.param(search.lower())))
    return where


def crons(where: Where, search: thread_store.CronSearch) -> Where:
    """Besides the metadata filter, which each backend spells its own way."""
    where.equal("flow_id", search.flow_id)
    where.equal("thread_id", search.thread_id)
    where.equal("enabled", search.enabled)
    return where
