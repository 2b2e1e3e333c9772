"""The embedded store: SQLite in WAL mode, one group-committing writer, one reader connection."""

from __future__ import annotations

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
        for number, script in enumerate(MIGRATIONS, start=1):  # 0001_….sql is version 1
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
            if trigger.idempotency_key is not None:
                async with conn.execute(
                    "SELECT r.* FROM triggers t JOIN runs r ON r.run_id = t.run_id"
                    " WHERE t.flow_id = ? AND t.idempotency_key = ?",
                    (trigger.flow_id, trigger.idempotency_key),
                ) as cursor:
                    existing = await cursor.fetchone()
                if existing is not None:
                    return existing, False
            await conn.execute(
                "INSERT INTO triggers (trigger_id, flow_id, received_at, method, path, query, headers,"
                " body, content_type, source, idempotency_key, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    run.run_id,
                ),
            )
            return await _insert_run(conn, run, now, trigger.trigger_id), True

        row, created = await self.writer.submit(job)
        return _run(row), created

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
            await conn.executemany(
                "INSERT INTO deliveries (delivery_id, run_id, endpoint_id, url, event_type, payload,"
                " status, attempts, next_attempt_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                [
                    (
                        d.delivery_id,
                        ending.run_id,
                        d.endpoint_id,
                        d.url,
                        d.event_type,
                        d.payload,
                        now,
                        now,
                        now,
                    )
                    for d in ending.deliveries
                ],
            )
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
        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO endpoints (endpoint_id, url, secret, flow_ids, event_types, description,"
                " enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint.endpoint_id,
                    endpoint.url,
                    endpoint.secret,
                    _dumps(list(endpoint.flow_ids)),
                    _dumps(list(endpoint.event_types)),
                    endpoint.description,
                    int(endpoint.enabled),
                    endpoint.created_at,
                    endpoint.updated_at,
                ),
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
        assignments: dict[str, Any] = {}
        for name in ("url", "secret", "description"):
            value = getattr(changes, name)
            if value is not None:
                assignments[name] = value
        for name in ("flow_ids", "event_types"):
            value = getattr(changes, name)
            if value is not None:
                assignments[name] = _dumps(list(value))
        if changes.enabled is not None:
            assignments["enabled"] = int(changes.enabled)
        assignments["updated_at"] = now
        columns = ", ".join(f"{name} = ?" for name in assignments)

        async def job(conn: aiosqlite.Connection) -> sqlite3.Row | None:
            async with conn.execute(
                f"UPDATE endpoints SET {columns} WHERE endpoint_id = ? RETURNING *",
                (*assignments.values(), endpoint_id),
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

    async def claim_deliveries(
        self, limit: int, now: float, lease_seconds: float
    ) -> list[models.Delivery]:
        async def job(conn: aiosqlite.Connection) -> list[sqlite3.Row]:
            async with conn.execute(
                "UPDATE deliveries SET lease_expires_at = ?, updated_at = ?"
                " WHERE delivery_id IN (SELECT delivery_id FROM deliveries"
                "   WHERE status = 'pending' AND next_attempt_at <= ?"
                "   AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
                "   ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING *",
                (now + lease_seconds, now, now, now, limit),
            ) as cursor:
                return list(await cursor.fetchall())

        rows = await self.writer.submit(job)
        return sorted((_delivery(row) for row in rows), key=lambda d: d.next_attempt_at or 0)

    async def record_attempt(
        self,
        delivery_id: str,
        result: models.AttemptResult,
        status: models.DeliveryStatus,
        next_attempt_at: float | None,
    ) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            async with conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?,"
                " lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ?"
                " WHERE delivery_id = ? RETURNING attempts",
                (
                    status.value,
                    next_attempt_at,
                    result.status_code,
                    result.error,
                    result.started_at + result.duration_ms / 1000,
                    delivery_id,
                ),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return
            await conn.execute(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,"
                " response_headers, response_body, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery_id,
                    row[0],
                    result.started_at,
                    result.duration_ms,
                    result.status_code,
                    _dumps(result.response_headers),
                    result.response_body,
                    result.error,
                ),
            )

        await self.writer.submit(job)

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

    async def get_delivery(self, delivery_id: str) -> models.Delivery | None:
        row = await self._fetchone("SELECT * FROM deliveries WHERE delivery_id = ?", (delivery_id,))
        return _delivery(row) if row else None

    async def list_deliveries(
        self,
        *,
        run_id: str | None = None,
        status: models.DeliveryStatus | None = None,
        endpoint_id: str | None = None,
        limit: int = 100,
    ) -> list[models.Delivery]:
        clauses, params = [], []
        for column, value in (("run_id", run_id), ("status", status), ("endpoint_id", endpoint_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._fetchall(
            f"SELECT * FROM deliveries {where} ORDER BY created_at DESC, delivery_id LIMIT ?",
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

    async def next_due_at(self) -> float | None:
        row = await self._fetchone(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_expires_at, 0))) FROM deliveries"
            " WHERE status = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])


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
    return models.Endpoint(
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        secret=row["secret"],
        flow_ids=tuple(_loads(row["flow_ids"])),
        event_types=tuple(_loads(row["event_types"])),
        description=row["description"],
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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
    )
