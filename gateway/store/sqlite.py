"""The embedded store: SQLite in WAL mode, one group-committing writer, one reader connection."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import structlog
import tenacity

from gateway import errors, models
from gateway.store import base
from gateway.store.writer import GroupCommitWriter

log = structlog.get_logger(__name__)

MIGRATIONS = sorted(
    (
        path
        for path in resources.files("gateway.store").joinpath("migrations").iterdir()
        if path.name.endswith(".sql")
    ),
    key=lambda path: path.name,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def path_from_url(database_url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, as SQLAlchemy spells them."""
    if not database_url.startswith("sqlite:///"):
        raise errors.ConfigError(f"not a sqlite URL: {database_url!r}")
    return Path(database_url.removeprefix("sqlite:///"))


class SQLiteStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._writer_conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise errors.StoreError("the store is not open")
        return self._writer

    # lifecycle

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(sqlite3.OperationalError),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1),
        reraise=True,
    )
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await self._connect()
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(writer)
        except BaseException:
            await writer.close()
            raise
        self._writer_conn = writer
        self._reader = await self._connect()
        self._writer = GroupCommitWriter(writer)
        self._writer.start()
        log.info("store_opened", backend="sqlite", path=str(self.path))

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for script in MIGRATIONS:
            number = int(script.name.split("_", 1)[0])  # 0003_….sql is version 3
            if number > version:
                await conn.executescript(
                    "BEGIN;" + script.read_text() + f";PRAGMA user_version={number};COMMIT;"
                )
                log.info("store_migrated", version=number)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        for conn in (self._reader, self._writer_conn):
            if conn is not None:
                await conn.close()
        self._reader = self._writer_conn = None

    async def ping(self) -> None:
        try:
            await self._fetchone("SELECT 1")
        except (sqlite3.Error, ValueError) as exc:
            raise errors.StoreError(f"sqlite unreachable: {exc}") from None

    # reads go through one connection of their own, so they never wait behind a commit

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise errors.StoreError("the store is not open")
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # triggers and runs

    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: base.NewRun, now: float
    ) -> tuple[models.Run, bool]:
        async def job(conn: aiosqlite.Connection) -> tuple[sqlite3.Row, bool]:
            # One writer runs jobs one at a time, so this check and the insert cannot interleave.
            if trigger.idempotency_key is not None:
                async with conn.execute(
                    "SELECT r.* FROM triggers t JOIN runs r ON r.run_id = t.run_id"
                    " WHERE t.flow_id = ? AND t.idempotency_key = ? AND t.received_at > ?"
                    " ORDER BY t.received_at DESC LIMIT 1",
                    (
                        trigger.flow_id,
                        trigger.idempotency_key,
                        trigger.received_at - trigger.dedup_window,
                    ),
                ) as cursor:
                    existing = await cursor.fetchone()
                if existing is not None:
                    return existing, False
            await _insert_trigger(conn, trigger, run.run_id)
            return await _insert_run(conn, run, now, trigger.trigger_id), True

        row, created = await self.writer.submit(job)
        return _run(row), created

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            await _insert_trigger(conn, trigger, None)

        await self.writer.submit(job)

    async def create_run(self, run: base.NewRun, now: float) -> models.Run:
        async def job(conn: aiosqlite.Connection) -> sqlite3.Row:
            return await _insert_run(conn, run, now, None)

        return _run(await self.writer.submit(job))

    async def get_run(self, run_id: str) -> models.Run | None:
        row = await self._fetchone("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _run(row) if row else None

    async def get_trigger(self, trigger_id: str) -> models.Trigger | None:
        row = await self._fetchone("SELECT * FROM triggers WHERE trigger_id = ?", (trigger_id,))
        if row is None:
            return None
        fields = dict(row)
        fields["headers"] = _loads(fields["headers"])
        return models.Trigger(**fields)

    async def claim_runs(self, limit: int, now: float, lease_seconds: float) -> list[models.Run]:
        async def job(conn: aiosqlite.Connection) -> list[sqlite3.Row]:
            async with conn.execute(
                "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_expires_at = ?,"
                " started_at = COALESCE(started_at, ?), updated_at = ?"
                " WHERE run_id IN (SELECT run_id FROM runs"
                "   WHERE status = 'pending' OR (status = 'running' AND lease_expires_at <= ?)"
                "   ORDER BY created_at LIMIT ?)"
                " RETURNING *",
                (now + lease_seconds, now, now, now, limit),
            ) as cursor:
                return list(await cursor.fetchall())

        rows = await self.writer.submit(job)
        return sorted((_run(row) for row in rows), key=lambda run: run.created_at)

    async def finish_run(self, ending: base.RunEnding, now: float) -> models.Run | None:
        async def job(conn: aiosqlite.Connection) -> sqlite3.Row | None:
            async with conn.execute(
                "UPDATE runs SET status = ?, output = ?, error = ?, ended_at = ?, updated_at = ?,"
                " lease_expires_at = NULL WHERE run_id = ? AND status IN ('pending', 'running')"
                " RETURNING *",
                (
                    ending.status.value,
                    _dumps(ending.output),
                    None if ending.error is None else _dumps(ending.error),
                    now,
                    now,
                    ending.run_id,
                ),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            await _insert_deliveries(conn, ending.run_id, ending.deliveries, now)
            return row

        row = await self.writer.submit(job)
        return _run(row) if row else None

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        if not run_ids:
            return

        async def job(conn: aiosqlite.Connection) -> None:
            await conn.executemany(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, updated_at = ?"
                " WHERE run_id = ? AND status = 'running'",
                [(now, run_id) for run_id in run_ids],
            )

        await self.writer.submit(job)

    async def append_event(self, run_id: str, event: str, data: Any, now: float) -> int:
        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "INSERT INTO events (run_id, event, data, created_at) VALUES (?, ?, ?, ?)",
                (run_id, event, _dumps(data), now),
            )
            return int(cursor.lastrowid or 0)

        return await self.writer.submit(job)

    async def list_events(self, run_id: str, after_id: int = 0) -> list[models.Event]:
        rows = await self._fetchall(
            "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
        )
        return [
            models.Event(
                id=row["id"],
                run_id=row["run_id"],
                event=row["event"],
                data=_loads(row["data"]),
                created_at=row["created_at"],
            )
            for row in rows
        ]

    # endpoints

    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        columns = _endpoint_columns(endpoint)

        async def job(conn: aiosqlite.Connection) -> None:
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            await conn.execute(
                f"INSERT INTO endpoints ({names}) VALUES ({marks})",
                tuple(columns.values()),
            )

        await self.writer.submit(job)
        return endpoint

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None:
        row = await self._fetchone("SELECT * FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))
        return _endpoint(row) if row else None

    async def list_endpoints(self) -> list[models.Endpoint]:
        rows = await self._fetchall("SELECT * FROM endpoints ORDER BY created_at")
        return [_endpoint(row) for row in rows]

    async def update_endpoint(
        self, endpoint_id: str, changes: base.EndpointChanges, now: float
    ) -> models.Endpoint | None:
        unknown = set(changes) - set(base.ENDPOINT_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        assignments = {name: _column_value(value) for name, value in changes.items()}
        assignments["updated_at"] = now
        return await self._update_endpoint(endpoint_id, assignments)

    async def _update_endpoint(
        self, endpoint_id: str, assignments: dict[str, Any]
    ) -> models.Endpoint | None:
        columns = ", ".join(f"{name} = ?" for name in assignments)

        async def job(conn: aiosqlite.Connection) -> sqlite3.Row | None:
            async with conn.execute(
                f"UPDATE endpoints SET {columns} WHERE endpoint_id = ? RETURNING *",
                (*assignments.values(), endpoint_id),
            ) as cursor:
                return await cursor.fetchone()

        row = await self.writer.submit(job)
        return _endpoint(row) if row else None

    async def resume_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint | None:
        return await self._update_endpoint(
            endpoint_id,
            {
                "enabled": 1,
                "disabled_reason": None,
                "consecutive_failures": 0,
                "failing_since": None,
                "circuit_open_until": None,
                "updated_at": now,
            },
        )

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        async def job(conn: aiosqlite.Connection) -> sqlite3.Row | None:
            async with conn.execute(
                "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?,"
                " secret = ?, updated_at = ? WHERE endpoint_id = ? RETURNING *",
                (overlap_until, secret, now, endpoint_id),
            ) as cursor:
                return await cursor.fetchone()

        row = await self.writer.submit(job)
        return _endpoint(row) if row else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async def job(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(
                "DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)
            )
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    # deliveries

    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            await _insert_deliveries(conn, run_id, deliveries, now)

        await self.writer.submit(job)

    async def claim_deliveries(
        self, limit: int, now: float, lease_seconds: float, policy: base.ClaimPolicy
    ) -> list[models.Delivery]:
        async def job(conn: aiosqlite.Connection) -> list[sqlite3.Row]:
            async with conn.execute(
                _CLAIM_DELIVERIES,
                {
                    "now": now,
                    "lease": now + lease_seconds,
                    "limit": limit,
                    "threshold": policy.circuit_failure_threshold,
                    "default_cap": policy.max_concurrency,
                },
            ) as cursor:
                return list(await cursor.fetchall())

        rows = await self.writer.submit(job)
        return sorted((_delivery(row) for row in rows), key=lambda d: d.next_attempt_at or 0)

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE deliveries SET next_attempt_at = ?, lease_expires_at = NULL"
                " WHERE delivery_id = ? AND status = 'pending'",
                (until, delivery_id),
            )

        await self.writer.submit(job)

    async def record_attempt(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        async def job(conn: aiosqlite.Connection) -> base.HealthChange | None:
            result = outcome.result
            ended_at = result.started_at + result.duration_ms / 1000
            async with conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?,"
                " lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ?"
                " WHERE delivery_id = ? RETURNING attempts",
                (
                    outcome.status.value,
                    outcome.next_attempt_at,
                    result.status_code,
                    result.error,
                    ended_at,
                    delivery.delivery_id,
                ),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            await conn.execute(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,"
                " response_headers, response_body, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery.delivery_id,
                    row[0],
                    result.started_at,
                    result.duration_ms,
                    result.status_code,
                    _dumps(result.response_headers),
                    result.response_body,
                    result.error,
                ),
            )
            if delivery.endpoint_id is None or outcome.health is None:
                return None
            return await _update_health(conn, delivery.endpoint_id, outcome, ended_at)

        return await self.writer.submit(job)

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        async def job(conn: aiosqlite.Connection) -> sqlite3.Row | None:
            async with conn.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                " WHERE delivery_id = ? RETURNING *",
                (now, now, delivery_id),
            ) as cursor:
                return await cursor.fetchone()

        row = await self.writer.submit(job)
        return _delivery(row) if row else None

    async def replay_deliveries(self, selection: base.DeliverySelection, now: float) -> int:
        clauses, params = _selection_clauses(selection)

        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                f" WHERE {' AND '.join(clauses)}",
                (now, now, *params),
            )
            return cursor.rowcount

        return await self.writer.submit(job)

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None:
        row = await self._fetchone("SELECT * FROM deliveries WHERE delivery_id = ?", (delivery_id,))
        return _delivery(row) if row else None

    async def list_deliveries(
        self, selection: base.DeliverySelection, limit: int = 100
    ) -> list[models.Delivery]:
        clauses, params = _selection_clauses(selection)
        rows = await self._fetchall(
            f"SELECT * FROM deliveries WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, delivery_id LIMIT ?",
            (*params, limit),
        )
        return [_delivery(row) for row in rows]

    async def list_attempts(self, delivery_id: str) -> list[models.Attempt]:
        rows = await self._fetchall(
            "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY attempt_id", (delivery_id,)
        )
        return [
            models.Attempt(
                attempt_id=row["attempt_id"],
                delivery_id=row["delivery_id"],
                attempt=row["attempt"],
                result=models.AttemptResult(
                    started_at=row["started_at"],
                    duration_ms=row["duration_ms"],
                    status_code=row["status_code"],
                    response_headers=_loads(row["response_headers"]),
                    response_body=row["response_body"],
                    error=row["error"],
                ),
            )
            for row in rows
        ]

    async def delivery_backlog(self, now: float) -> tuple[int, float | None]:
        row = await self._fetchone(
            "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at <= ? THEN next_attempt_at END)"
            " FROM deliveries WHERE status = 'pending'",
            (now,),
        )
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def next_due_at(self) -> float | None:
        row = await self._fetchone(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_expires_at, 0))) FROM deliveries"
            " WHERE status = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])


async def _insert_trigger(
    conn: aiosqlite.Connection, trigger: models.Trigger, run_id: str | None
) -> None:
    await conn.execute(
        "INSERT INTO triggers (trigger_id, flow_id, received_at, method, path, query, headers,"
        " body, content_type, source, idempotency_key, run_id, verification)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            trigger.trigger_id,
            trigger.flow_id,
            trigger.received_at,
            trigger.method,
            trigger.path,
            trigger.query,
            _dumps(trigger.headers),
            trigger.body,
            trigger.content_type,
            trigger.source,
            trigger.idempotency_key,
            run_id,
            trigger.verification,
        ),
    )


async def _insert_run(
    conn: aiosqlite.Connection, run: base.NewRun, now: float, trigger_id: str | None
) -> sqlite3.Row:
    async with conn.execute(
        "INSERT INTO runs (run_id, thread_id, flow_id, status, input, kwargs, metadata,"
        " created_at, updated_at, trigger_id) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)"
        " RETURNING *",
        (
            run.run_id,
            run.thread_id,
            run.flow_id,
            _dumps(run.input),
            _dumps(run.kwargs),
            _dumps(run.metadata),
            now,
            now,
            trigger_id,
        ),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row


def _run(row: sqlite3.Row) -> models.Run:
    return models.Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        flow_id=row["flow_id"],
        status=models.RunStatus(row["status"]),
        input=_loads(row["input"]),
        kwargs=_loads(row["kwargs"]),
        metadata=_loads(row["metadata"]),
        output=_loads(row["output"]),
        error=_loads(row["error"]),
        attempt=row["attempt"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        trigger_id=row["trigger_id"],
    )


def _endpoint(row: sqlite3.Row) -> models.Endpoint:
    fields = dict(row)
    fields["flow_ids"] = tuple(_loads(fields["flow_ids"]))
    fields["event_types"] = tuple(_loads(fields["event_types"]))
    schedule = _loads(fields["retry_schedule"])
    fields["retry_schedule"] = None if schedule is None else tuple(schedule)
    fields["enabled"] = bool(fields["enabled"])
    return models.Endpoint(**fields)


def _column_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return _dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value


def _endpoint_columns(endpoint: models.Endpoint) -> dict[str, Any]:
    return {
        field.name: _column_value(getattr(endpoint, field.name))
        for field in dataclasses.fields(endpoint)
    }


async def _insert_deliveries(
    conn: aiosqlite.Connection,
    run_id: str | None,
    deliveries: Sequence[models.NewDelivery],
    now: float,
) -> None:
    await conn.executemany(
        "INSERT INTO deliveries (delivery_id, run_id, endpoint_id, url, event_type, payload,"
        " status, attempts, next_attempt_at, created_at, updated_at, origin_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
        [
            (
                d.delivery_id,
                run_id,
                d.endpoint_id,
                d.url,
                d.event_type,
                d.payload,
                now,
                now,
                now,
                d.origin_at,
            )
            for d in deliveries
        ],
    )


async def _update_health(
    conn: aiosqlite.Connection, endpoint_id: str, outcome: base.AttemptOutcome, now: float
) -> base.HealthChange | None:
    """Track the endpoint's failure streak in the same transaction as the attempt."""
    async with conn.execute(
        "SELECT consecutive_failures, failing_since, disabled_reason FROM endpoints"
        " WHERE endpoint_id = ?",
        (endpoint_id,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    health = outcome.health
    assert health is not None
    streak, failing_since, disabled_reason = row[0], row[1], row[2]
    if outcome.result.ok:
        if streak == 0:
            return None
        await conn.execute(
            "UPDATE endpoints SET consecutive_failures = 0, failing_since = NULL,"
            " circuit_open_until = NULL WHERE endpoint_id = ?",
            (endpoint_id,),
        )
        recovered = streak >= health.circuit_failure_threshold
        return (
            base.HealthChange("endpoint.recovered", "a delivery succeeded") if recovered else None
        )
    streak += 1
    failing_since = failing_since or now
    change = None
    open_until = None
    if streak >= health.circuit_failure_threshold:
        open_until = now + health.circuit_cooldown_seconds
        if streak == health.circuit_failure_threshold:
            change = base.HealthChange("endpoint.circuit_opened", f"{streak} failures in a row")
    reason = disabled_reason
    if reason is None:
        if outcome.disable_endpoint:
            reason = outcome.disable_endpoint
        elif now - failing_since >= health.disable_after_seconds:
            reason = f"failing continuously for {health.disable_after_seconds / 3600:g} h"
        if reason is not None:
            change = base.HealthChange("endpoint.disabled", reason)
    await conn.execute(
        "UPDATE endpoints SET consecutive_failures = ?, failing_since = ?, circuit_open_until = ?,"
        " disabled_reason = ? WHERE endpoint_id = ?",
        (streak, failing_since, open_until, reason, endpoint_id),
    )
    return change


def _selection_clauses(selection: base.DeliverySelection) -> tuple[list[str], list[Any]]:
    clauses, params = ["1 = 1"], []
    for column in ("run_id", "endpoint_id"):
        value = getattr(selection, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if selection.statuses:
        clauses.append(f"status IN ({', '.join('?' for _ in selection.statuses)})")
        params.extend(status.value for status in selection.statuses)
    if selection.since is not None:
        clauses.append("created_at >= ?")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("created_at < ?")
        params.append(selection.until)
    return clauses, params


# Fair claiming: each destination (an endpoint, or a per-run URL) gets at most its free
# concurrency, so one slow receiver cannot fill every slot. Paused, disabled and open-circuit
# endpoints are skipped; a tripped circuit past its cool-down lets one probe through.
_CLAIM_DELIVERIES = """
WITH inflight AS (
    SELECT COALESCE(endpoint_id, url) AS destination, COUNT(*) AS n FROM deliveries
    WHERE status = 'pending' AND lease_expires_at > :now
    GROUP BY destination
),
due AS (
    SELECT d.delivery_id, d.next_attempt_at, COALESCE(d.endpoint_id, d.url) AS destination,
        ROW_NUMBER() OVER (
            PARTITION BY COALESCE(d.endpoint_id, d.url) ORDER BY d.next_attempt_at
        ) AS position,
        CASE WHEN e.consecutive_failures >= :threshold THEN 1
             ELSE COALESCE(e.max_concurrency, :default_cap) END AS cap
    FROM deliveries d LEFT JOIN endpoints e ON e.endpoint_id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= :now)
      AND (e.endpoint_id IS NULL OR (e.enabled = 1 AND e.disabled_reason IS NULL
           AND COALESCE(e.circuit_open_until, 0) <= :now))
)
UPDATE deliveries SET lease_expires_at = :lease, updated_at = :now
WHERE delivery_id IN (
    SELECT due.delivery_id FROM due LEFT JOIN inflight USING (destination)
    WHERE due.position <= due.cap - COALESCE(inflight.n, 0)
    ORDER BY due.next_attempt_at LIMIT :limit
)
RETURNING *
"""


def _delivery(row: sqlite3.Row) -> models.Delivery:
    return models.Delivery(
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        event_type=row["event_type"],
        payload=row["payload"],
        status=models.DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        origin_at=row["origin_at"],
    )
