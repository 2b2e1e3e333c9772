"""The embedded store: SQLite in WAL mode, one group-committing writer, one reader connection."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import structlog
import tenacity

from gateway import errors, models
from gateway.outbox import health
from gateway.store import base
from gateway.store.secretbox import SecretBox
from gateway.store.sqlite_relay import PUSHED, RelayVerbs, insert_filtered
from gateway.store.writer import GroupCommitWriter, is_storage_failure, storage_unavailable

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


@dataclasses.dataclass
class _ProcessLock:
    fd: int
    owners: set[str]


# Files this process serves, each with the owners of its stores that serve it (tests run
# several apps on one file in one process; another process is another gateway).
_SERVED: dict[Path, _ProcessLock] = {}


def serve_file(path: Path, owner: str) -> set[str]:
    """Lock ``path`` for this process, as ``owner``; every owner in this process serving it.
    A second gateway process on the same file gets a clear ``StoreError``."""
    key = path.resolve()
    served = _SERVED.get(key)
    if served is None:
        served = _SERVED[key] = _ProcessLock(lock_database(key), set())
    served.owners.add(owner)
    return set(served.owners)


def stop_serving(path: Path, owner: str) -> None:
    key = path.resolve()
    served = _SERVED.get(key)
    if served is None or owner not in served.owners:
        return
    served.owners.discard(owner)
    if not served.owners:
        os.close(served.fd)  # closing the descriptor releases the lock
        del _SERVED[key]


def lock_database(path: Path) -> int:
    """Hold an exclusive lock on ``<path>.lock`` for as long as the returned descriptor stays
    open (the process's life): a second gateway on the same file gets a clear ``StoreError``
    instead of sharing it. Operator commands do not take it, so they work while a gateway runs."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise errors.StoreError(
            f"another gateway (pid {holder}) is serving {path}: a SQLite database takes one "
            "process; stop that one first, or use PostgreSQL (database_url = postgresql://…) "
            "to run several"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def path_from_url(database_url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, as SQLAlchemy spells them."""
    if not database_url.startswith("sqlite:///"):
        raise errors.ConfigError(f"not a sqlite URL: {database_url!r}")
    return Path(database_url.removeprefix("sqlite:///"))


class SQLiteStore(RelayVerbs):
    def __init__(self, path: Path | str, secret_key: str = "") -> None:
        """``secret_key``: ``GATEWAY_SECRET_KEY``, the keys sealing endpoint secrets (newest
        first); empty means the install's generated key beside the database."""
        self.path = Path(path)
        self._secret_key = secret_key
        self._secrets: SecretBox | None = None
        self._writer_conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self.owner = base.new_owner()

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise errors.StoreError("the store is not open")
        return self._writer

    @property
    def secrets(self) -> SecretBox:
        if self._secrets is None:
            raise errors.StoreError("the store is not open")
        return self._secrets

    # lifecycle

    async def open(self) -> None:
        try:
            await self._open()
        except (sqlite3.Error, OSError) as exc:
            raise errors.StoreError(f"cannot open the database {self.path}: {exc}") from None

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(sqlite3.OperationalError),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1),
        reraise=True,
    )
    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secrets = SecretBox.for_database(self._secret_key, self.path.parent)
        writer = await self._connect()
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(writer)
            await self._seal_secrets(writer, self._secrets)
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
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> list[int]:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        applied = []
        for script in MIGRATIONS:
            number = int(script.name.split("_", 1)[0])  # 0003_….sql is version 3
            if number > version:
                await conn.executescript(
                    "BEGIN;" + script.read_text() + f";PRAGMA user_version={number};COMMIT;"
                )
                log.info("store_migrated", version=number)
                applied.append(number)
        return applied

    async def migrate(self) -> list[int]:
        """Apply the migrations the file lacks, and nothing else; the versions applied."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = await self._connect()
            try:
                await conn.execute("PRAGMA journal_mode=WAL")
                return await self._migrate(conn)
            finally:
                await conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise errors.StoreError(f"cannot migrate the database {self.path}: {exc}") from None

    async def _seal_secrets(self, conn: aiosqlite.Connection, secrets: SecretBox) -> None:
        """Encrypt plaintext endpoint secrets, and re-encrypt those sealed with an older key;
        a secret no configured key opens stops the start with a clear error."""
        query = "SELECT endpoint_id, secret, previous_secret FROM endpoints"
        rows = list(await conn.execute_fetchall(query))
        stale = [
            row
            for row in rows
            if not all(
                secrets.is_current(value)
                for value in (row["secret"], row["previous_secret"])
                if value is not None
            )
        ]
        if not stale:
            return
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for endpoint_id, secret, previous in await conn.execute_fetchall(query):
                await conn.execute(
                    "UPDATE endpoints SET secret = ?, previous_secret = ? WHERE endpoint_id = ?",
                    (
                        _resealed(secrets, secret),
                        None if previous is None else _resealed(secrets, previous),
                        endpoint_id,
                    ),
                )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        log.info("endpoint_secrets_sealed", endpoints=len(stale))

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        for conn in (self._reader, self._writer_conn):
            if conn is not None:
                await conn.close()
        self._reader = self._writer_conn = None
        stop_serving(self.path, self.owner)

    def write_backlog(self) -> int:
        return 0 if self._writer is None else self._writer.backlog

    async def ping(self) -> None:
        try:
            await self._fetchone("SELECT 1")
        except (sqlite3.Error, ValueError) as exc:
            raise errors.StoreError(f"sqlite unreachable: {exc}") from None
        await self.writer.check_writable()

    # reads go through one connection of their own, so they never wait behind a commit

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise errors.StoreError("the store is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            if is_storage_failure(exc):
                raise storage_unavailable(exc) from None
            raise

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # triggers and runs

    async def create_trigger_and_run(
        self, trigger: models.Trigger, run: base.NewRun, now: float
    ) -> tuple[models.Run, bool]:
        def job(conn: sqlite3.Connection) -> tuple[sqlite3.Row, bool]:
            # One writer runs jobs one at a time, so this check and the insert cannot interleave.
            if trigger.idempotency_key is not None:
                with closing(
                    conn.execute(
                        "SELECT r.* FROM triggers t JOIN runs r ON r.run_id = t.run_id"
                        " WHERE t.flow_id = ? AND t.idempotency_key = ? AND t.received_at > ?"
                        " ORDER BY t.received_at DESC LIMIT 1",
                        (
                            trigger.flow_id,
                            trigger.idempotency_key,
                            trigger.received_at - trigger.dedup_window,
                        ),
                    )
                ) as cursor:
                    existing = cursor.fetchone()
                if existing is not None:
                    return existing, False
            _insert_trigger(conn, trigger, run.run_id)
            return _insert_run(conn, run, now, trigger.trigger_id, self.owner), True

        row, created = await self.writer.submit(job)
        return _run(row), created

    async def store_rejected_trigger(self, trigger: models.Trigger) -> None:
        def job(conn: sqlite3.Connection) -> None:
            _insert_trigger(conn, trigger, None)

        await self.writer.submit(job)

    async def create_run(self, run: base.NewRun, now: float) -> models.Run:
        def job(conn: sqlite3.Connection) -> sqlite3.Row:
            return _insert_run(conn, run, now, None, self.owner)

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
        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            with (
                closing(
                    conn.execute(
                        "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_expires_at = ?,"
                        " lease_owner = ?, started_at = COALESCE(started_at, ?), updated_at = ?"
                        " WHERE run_id IN (SELECT run_id FROM runs"
                        "   WHERE status IN ('pending', 'running')"  # the runs_open index
                        "   AND ((status = 'pending' AND created_at <= ? AND "
                        + _THREAD_IS_FREE
                        + ")"
                        "   OR (status = 'running' AND lease_expires_at <= ?))"
                        "   ORDER BY created_at LIMIT ?)"
                        " RETURNING *",
                        (now + lease_seconds, self.owner, now, now, now, now, limit),
                    )
                ) as cursor
            ):
                return list(cursor.fetchall())

        rows = await self.writer.submit(job)
        return sorted((_run(row) for row in rows), key=lambda run: run.created_at)

    async def finish_run(self, ending: base.RunEnding, now: float) -> models.Run | None:
        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    "UPDATE runs SET status = ?, output = ?, error = ?, ended_at = ?, updated_at = ?,"
                    " lease_expires_at = NULL, lease_owner = ? WHERE run_id = ?"
                    " AND status IN ('pending', 'running') RETURNING *",
                    (
                        ending.status.value,
                        _dumps(ending.output),
                        None if ending.error is None else _dumps(ending.error),
                        now,
                        now,
                        self.owner,
                        ending.run_id,
                    ),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
            if row is None:
                return None
            _insert_deliveries(conn, ending.run_id, ending.deliveries, now)
            insert_filtered(conn, ending.filtered)
            if ending.final_event is not None:
                name, data = ending.final_event
                conn.execute(
                    "INSERT INTO events (run_id, event, data, created_at) VALUES (?, ?, ?, ?)",
                    (ending.run_id, name, _dumps(data), now),
                )
            return row

        row = await self.writer.submit(job)
        return _run(row) if row else None

    async def release_runs(self, run_ids: Sequence[str], now: float) -> None:
        if not run_ids:
            return

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, lease_owner = NULL,"
                " updated_at = ? WHERE run_id = ? AND status = 'running' AND lease_owner = ?",
                [(now, run_id, self.owner) for run_id in run_ids],
            )

        await self.writer.submit(job)

    async def request_cancel(self, run_id: str, reason: str, now: float) -> models.Run | None:
        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    "UPDATE runs SET cancel_reason = ?, updated_at = ?"
                    " WHERE run_id = ? AND status IN ('pending', 'running') RETURNING *",
                    (reason, now, run_id),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
                return row

        row = await self.writer.submit(job)
        return _run(row) if row else None

    async def renew_run_leases(self, run_ids: Sequence[str], until: float) -> list[str]:
        return await self._renew("runs", "run_id", "status = 'running'", run_ids, until)

    async def renew_delivery_leases(self, delivery_ids: Sequence[str], until: float) -> list[str]:
        # A lease released meanwhile (the try recorded, or deferred) stays released.
        return await self._renew(
            "deliveries",
            "delivery_id",
            "status = 'pending' AND lease_expires_at IS NOT NULL",
            delivery_ids,
            until,
        )

    async def _renew(
        self, table: str, key: str, held: str, ids: Sequence[str], until: float
    ) -> list[str]:
        """One UPDATE: the leases this owner still holds on ``ids`` now last until ``until``."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))

        def job(conn: sqlite3.Connection) -> list[str]:
            with closing(
                conn.execute(
                    f"UPDATE {table} SET lease_expires_at = ? WHERE {key} IN ({marks})"
                    f" AND {held} AND lease_owner = ? RETURNING {key}",
                    (until, *ids, self.owner),
                )
            ) as cursor:
                return [row[0] for row in cursor.fetchall()]

        return await self.writer.submit(job)

    async def take_over(self, now: float) -> int:
        alive = sorted(serve_file(self.path, self.owner))
        marks = ", ".join("?" * len(alive))

        def job(conn: sqlite3.Connection) -> int:
            runs = conn.execute(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, lease_owner = NULL,"
                " updated_at = ? WHERE status = 'running'"
                f" AND (lease_owner IS NULL OR lease_owner NOT IN ({marks}))",
                (now, *alive),
            ).rowcount
            deliveries = conn.execute(
                "UPDATE deliveries SET lease_expires_at = NULL, lease_owner = NULL"
                " WHERE status = 'pending' AND lease_expires_at IS NOT NULL"
                f" AND (lease_owner IS NULL OR lease_owner NOT IN ({marks}))",
                alive,
            ).rowcount
            return runs + deliveries

        released = await self.writer.submit(job)
        if released:
            log.info("leases_taken_over", released=released, path=str(self.path))
        return released

    async def append_event(self, run_id: str, event: str, data: Any, now: float) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO events (run_id, event, data, created_at) VALUES (?, ?, ?, ?)",
                (run_id, event, _dumps(data), now),
            )
            return int(cursor.lastrowid or 0)

        return await self.writer.submit(job)

    async def list_events(self, run_id: str, after_id: int = 0) -> list[models.Event]:
        rows = await self._fetchall(
            "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
        )
        return [_event(row) for row in rows]

    # endpoints

    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        columns = _endpoint_columns(endpoint)
        columns["secret"] = self.secrets.seal(endpoint.secret)
        if endpoint.previous_secret is not None:
            columns["previous_secret"] = self.secrets.seal(endpoint.previous_secret)

        def job(conn: sqlite3.Connection) -> None:
            _insert(conn, "endpoints", columns)

        await self.writer.submit(job)
        return endpoint

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None:
        row = await self._fetchone("SELECT * FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))
        return _endpoint(row, self.secrets) if row else None

    async def list_endpoints(self) -> list[models.Endpoint]:
        rows = await self._fetchall("SELECT * FROM endpoints ORDER BY created_at")
        return [_endpoint(row, self.secrets) for row in rows]

    async def update_endpoint(
        self, endpoint_id: str, changes: base.EndpointChanges, now: float
    ) -> models.Endpoint | None:
        unknown = set(changes) - set(base.ENDPOINT_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        assignments = {name: _column_value(value) for name, value in changes.items()}
        if "secret" in changes:
            assignments["secret"] = self.secrets.seal(changes["secret"])
        assignments["updated_at"] = now
        return await self._update_endpoint(endpoint_id, assignments)

    async def _update_endpoint(
        self, endpoint_id: str, assignments: dict[str, Any]
    ) -> models.Endpoint | None:
        columns = ", ".join(f"{name} = ?" for name in assignments)

        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    f"UPDATE endpoints SET {columns} WHERE endpoint_id = ? RETURNING *",
                    (*assignments.values(), endpoint_id),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
                return row

        row = await self.writer.submit(job)
        return _endpoint(row, self.secrets) if row else None

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
        sealed = self.secrets.seal(secret)

        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?,"
                    " secret = ?, updated_at = ? WHERE endpoint_id = ? RETURNING *",
                    (overlap_until, sealed, now, endpoint_id),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
                return row

        row = await self.writer.submit(job)
        return _endpoint(row, self.secrets) if row else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    # deliveries

    async def enqueue_deliveries(
        self, run_id: str | None, deliveries: Sequence[models.NewDelivery], now: float
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            _insert_deliveries(conn, run_id, deliveries, now)

        await self.writer.submit(job)

    async def claim_deliveries(
        self,
        limit: int,
        now: float,
        lease_seconds: float,
        policy: base.ClaimPolicy,
        run_id: str | None = None,
    ) -> list[models.Delivery]:
        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            if run_id is None:  # a run's fresh deliveries have no earlier try to settle
                conn.execute(
                    _SETTLE_ABANDONED_ATTEMPTS,
                    {"now": now, "unknown": base.ATTEMPT_OUTCOME_UNKNOWN},
                )
            with closing(
                conn.execute(
                    _CLAIM_DELIVERIES,
                    {
                        "now": now,
                        "lease": now + lease_seconds,
                        "limit": limit,
                        "threshold": policy.circuit_failure_threshold,
                        "default_cap": policy.max_concurrency,
                        "run_id": run_id,
                        "owner": self.owner,
                    },
                )
            ) as cursor:
                rows = list(cursor.fetchall())
            # Each try is on record before its request leaves, in the claim's own commit.
            conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
                " response_headers, response_body) VALUES (?, ?, ?, 0, '{}', x'')",
                [(row["delivery_id"], row["attempts"], now) for row in rows],
            )
            return rows

        rows = await self.writer.submit(job)
        return sorted((_delivery(row) for row in rows), key=lambda d: d.next_attempt_at or 0)

    async def defer_delivery(self, delivery_id: str, until: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            started = conn.execute(
                "DELETE FROM attempts WHERE delivery_id = ? AND " + _ATTEMPT_OPEN + " AND attempt ="
                " (SELECT attempts FROM deliveries WHERE delivery_id = ? AND status = 'pending')",
                (delivery_id, delivery_id),
            ).rowcount
            conn.execute(
                "UPDATE deliveries SET next_attempt_at = ?, lease_expires_at = NULL,"
                " attempts = attempts - ? WHERE delivery_id = ? AND status = 'pending'",
                (until, started, delivery_id),
            )

        await self.writer.submit(job)

    async def record_attempt(
        self, delivery: models.Delivery, outcome: base.AttemptOutcome
    ) -> base.HealthChange | None:
        def job(conn: sqlite3.Connection) -> base.HealthChange | None:
            return record_outcome(conn, delivery, outcome)

        return await self.writer.submit(job)

    async def retry_delivery(self, delivery_id: str, now: float) -> models.Delivery | None:
        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                    " WHERE delivery_id = ? RETURNING *",
                    (now, now, delivery_id),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
                return row

        row = await self.writer.submit(job)
        return _delivery(row) if row else None

    async def replay_deliveries(self, selection: base.DeliverySelection, now: float) -> int:
        clauses, params = _selection_clauses(selection)

        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
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
            " WHERE status = 'pending' AND " + PUSHED
        )
        return None if row is None or row[0] is None else float(row[0])

    # --- LangGraph threads and crons (issue 5) ---------------------------------------------

    async def create_thread(self, thread: base.Thread, if_exists: str) -> tuple[base.Thread, bool]:
        def job(conn: sqlite3.Connection) -> bool:
            with closing(
                conn.execute("SELECT 1 FROM threads WHERE thread_id = ?", (thread.thread_id,))
            ) as cursor:
                if cursor.fetchone() is not None:
                    return False
            conn.execute(
                "INSERT INTO threads (thread_id, metadata, config, ttl, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    thread.thread_id,
                    _dumps(thread.metadata),
                    _dumps(thread.config),
                    None if thread.ttl is None else _dumps(thread.ttl),
                    thread.created_at,
                    thread.updated_at,
                ),
            )
            return True

        created = await self.writer.submit(job)
        stored = await self.get_thread(thread.thread_id)
        assert stored is not None
        return stored, created

    async def get_thread(self, thread_id: str) -> base.Thread | None:
        row = await self._fetchone(f"{_THREADS} WHERE thread_id = ?", (thread_id,))
        return _thread(row) if row else None

    async def update_thread(
        self,
        thread_id: str,
        metadata: Mapping[str, Any],
        now: float,
        ttl: dict[str, Any] | None,
    ) -> base.Thread | None:
        def job(conn: sqlite3.Connection) -> bool:
            with closing(
                conn.execute("SELECT metadata FROM threads WHERE thread_id = ?", (thread_id,))
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
            if row is None:
                return False
            merged = {**_loads(row[0]), **metadata}
            conn.execute(
                "UPDATE threads SET metadata = ?, updated_at = ?, ttl = COALESCE(?, ttl)"
                " WHERE thread_id = ?",
                (_dumps(merged), now, None if ttl is None else _dumps(ttl), thread_id),
            )
            return True

        if not await self.writer.submit(job):
            return None
        return await self.get_thread(thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)",
                (thread_id,),
            )
            conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM thread_states WHERE thread_id = ?", (thread_id,))
            cursor = conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    async def search_threads(self, search: base.ThreadSearch) -> list[base.Thread]:
        where, params = _thread_filters(search)
        column = search.sort_by if search.sort_by in _THREAD_SORTS else "updated_at"
        order = "ASC" if search.sort_order == "asc" else "DESC"
        rows = await self._fetchall(
            f"SELECT * FROM ({_THREADS}) WHERE {where} ORDER BY {column} {order}, thread_id"
            " LIMIT ? OFFSET ?",
            (*params, search.limit, search.offset),
        )
        return [_thread(row) for row in rows]

    async def count_threads(self, search: base.ThreadSearch) -> int:
        where, params = _thread_filters(search)
        row = await self._fetchone(f"SELECT COUNT(*) FROM ({_THREADS}) WHERE {where}", params)
        return int(row[0]) if row else 0

    async def list_checkpoints(self, thread_id: str) -> list[base.Checkpoint]:
        events = await self._fetchall(
            "SELECT e.id, e.run_id, e.data, e.created_at FROM events e"
            " JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = ? AND e.event = 'values' ORDER BY e.id",
            (thread_id,),
        )
        with_values = {row["run_id"] for row in events}
        checkpoints = [
            base.Checkpoint(
                checkpoint_id=str(uuid.UUID(int=row["id"])),
                thread_id=thread_id,
                values=_loads(row["data"]),
                created_at=row["created_at"],
                source="loop",
                run_id=row["run_id"],
                order=row["id"],
            )
            for row in events
        ]
        for row in await self._fetchall(
            "SELECT run_id, output, ended_at FROM runs WHERE thread_id = ? AND status = 'success'"
            " AND output IS NOT NULL AND output != 'null'",
            (thread_id,),
        ):
            if row["run_id"] not in with_values:
                checkpoints.append(
                    base.Checkpoint(
                        checkpoint_id=str(uuid.uuid5(uuid.NAMESPACE_URL, row["run_id"])),
                        thread_id=thread_id,
                        values=_loads(row["output"]),
                        created_at=row["ended_at"],
                        source="loop",
                        run_id=row["run_id"],
                    )
                )
        for row in await self._fetchall(
            "SELECT * FROM thread_states WHERE thread_id = ?", (thread_id,)
        ):
            checkpoints.append(
                base.Checkpoint(
                    checkpoint_id=row["checkpoint_id"],
                    thread_id=thread_id,
                    values=_loads(row["state_values"]),
                    created_at=row["created_at"],
                    source="update",
                    as_node=row["as_node"],
                )
            )
        return sorted(checkpoints, key=lambda c: (c.created_at, c.order), reverse=True)

    async def add_thread_state(
        self, thread_id: str, checkpoint_id: str, values: Any, as_node: str | None, now: float
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO thread_states (checkpoint_id, thread_id, state_values, as_node,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (checkpoint_id, thread_id, _dumps(values), as_node, now),
            )
            conn.execute("UPDATE threads SET updated_at = ? WHERE thread_id = ?", (now, thread_id))

        await self.writer.submit(job)

    async def list_thread_runs(
        self, thread_id: str, limit: int, offset: int, status: str | None
    ) -> list[models.Run]:
        clause, params = ("", ()) if status is None else (" AND status = ?", (status,))
        rows = await self._fetchall(
            f"SELECT * FROM runs WHERE thread_id = ?{clause}"
            " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?",
            (thread_id, *params, limit, offset),
        )
        return [_run(row) for row in rows]

    async def inflight_runs(self, thread_id: str | None) -> list[models.Run]:
        of_thread = "" if thread_id is None else " AND thread_id = ?"
        rows = await self._fetchall(
            "SELECT * FROM runs WHERE status IN ('pending', 'running')"
            + of_thread
            + " ORDER BY created_at, run_id",
            () if thread_id is None else (thread_id,),
        )
        return [_run(row) for row in rows]

    async def delete_run(self, run_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            cursor = conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    async def list_thread_events(self, thread_id: str, after_id: int) -> list[models.Event]:
        rows = await self._fetchall(
            "SELECT e.* FROM events e JOIN runs r ON r.run_id = e.run_id"
            " WHERE r.thread_id = ? AND e.id > ? ORDER BY e.id",
            (thread_id, after_id),
        )
        return [_event(row) for row in rows]

    async def create_cron(self, cron: base.Cron) -> base.Cron:
        columns = _cron_columns(cron)

        def job(conn: sqlite3.Connection) -> None:
            _insert(conn, "crons", columns)

        await self.writer.submit(job)
        return cron

    async def get_cron(self, cron_id: str) -> base.Cron | None:
        row = await self._fetchone("SELECT * FROM crons WHERE cron_id = ?", (cron_id,))
        return _cron(row) if row else None

    async def update_cron(
        self, cron_id: str, changes: Mapping[str, Any], now: float
    ) -> base.Cron | None:
        unknown = set(changes) - set(base.CRON_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        assignments = {
            name: _dumps(value) if name in ("payload", "metadata") else _column_value(value)
            for name, value in changes.items()
        }
        assignments["updated_at"] = now
        columns = ", ".join(f"{name} = ?" for name in assignments)

        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with closing(
                conn.execute(
                    f"UPDATE crons SET {columns} WHERE cron_id = ? RETURNING *",
                    (*assignments.values(), cron_id),
                )
            ) as cursor:
                row: sqlite3.Row | None = cursor.fetchone()
                return row

        row = await self.writer.submit(job)
        return _cron(row) if row else None

    async def delete_cron(self, cron_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM crons WHERE cron_id = ?", (cron_id,))
            return cursor.rowcount > 0

        return await self.writer.submit(job)

    async def search_crons(self, search: base.CronSearch) -> list[base.Cron]:
        where, params = _cron_filters(search)
        column = search.sort_by if search.sort_by in _CRON_SORTS else "created_at"
        order = "ASC" if search.sort_order == "asc" else "DESC"
        rows = await self._fetchall(
            f"SELECT * FROM crons WHERE {where} ORDER BY {column} {order}, cron_id"
            " LIMIT ? OFFSET ?",
            (*params, search.limit, search.offset),
        )
        return [_cron(row) for row in rows]

    async def count_crons(self, search: base.CronSearch) -> int:
        where, params = _cron_filters(search)
        row = await self._fetchone(f"SELECT COUNT(*) FROM crons WHERE {where}", params)
        return int(row[0]) if row else 0

    async def due_crons(self, now: float, limit: int) -> list[base.Cron]:
        rows = await self._fetchall(
            "SELECT * FROM crons WHERE enabled = 1 AND next_run_date <= ?"
            " ORDER BY next_run_date LIMIT ?",
            (now, limit),
        )
        return [_cron(row) for row in rows]

    async def fire_cron(self, firing: base.CronFiring, now: float) -> models.Run | None:
        def job(conn: sqlite3.Connection) -> sqlite3.Row | None:
            cursor = conn.execute(
                "UPDATE crons SET next_run_date = COALESCE(?, next_run_date), enabled = ?,"
                " updated_at = ? WHERE cron_id = ? AND enabled = 1 AND next_run_date = ?",
                (
                    firing.next_run_date,
                    int(firing.next_run_date is not None),
                    now,
                    firing.cron_id,
                    firing.due,
                ),
            )
            if cursor.rowcount == 0:
                return None
            return _insert_run(conn, firing.run, now, None)

        row = await self.writer.submit(job)
        return _run(row) if row else None

    # --- /inspect: read-side queries and bins (gateway/inspect/; migration 0006) ---------------

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
        rows = await self._fetchall(
            f"SELECT * FROM triggers WHERE {' AND '.join(clauses)}"
            " ORDER BY received_at DESC, trigger_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_trigger(row) for row in rows]

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
        rows = await self._fetchall(
            f"SELECT * FROM runs WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_run(row) for row in rows]

    async def find_deliveries(
        self, selection: base.DeliverySelection, flow_id: str | None = None, limit: int = 50
    ) -> list[models.Delivery]:
        clauses, params = _selection_clauses(selection)
        if flow_id:
            clauses.append("run_id IN (SELECT run_id FROM runs WHERE flow_id = ?)")
            params.append(flow_id)
        rows = await self._fetchall(
            f"SELECT * FROM deliveries WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, delivery_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_delivery(row) for row in rows]

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
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
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

        await self.writer.submit(job)
        return bin

    async def get_bin(self, bin_id: str) -> base.Bin | None:
        row = await self._fetchone(f"{_BINS} WHERE b.bin_id = ?", (bin_id,))
        return _bin(row) if row else None

    async def list_bins(self) -> list[base.Bin]:
        rows = await self._fetchall(f"{_BINS} ORDER BY b.created_at DESC")
        return [_bin(row) for row in rows]

    async def update_bin(self, bin_id: str, changes: Mapping[str, Any]) -> base.Bin | None:
        unknown = set(changes) - set(base.BIN_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        if changes:
            columns = ", ".join(f"{name} = ?" for name in changes)

            def job(conn: sqlite3.Connection) -> None:
                conn.execute(
                    f"UPDATE bins SET {columns} WHERE bin_id = ?", (*changes.values(), bin_id)
                )

            await self.writer.submit(job)
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
                    _dumps(capture.headers),
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
        rows = await self._fetchall(
            f"SELECT * FROM bin_requests WHERE {' AND '.join(clauses)}"
            " ORDER BY capture_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_capture(row) for row in rows]

    async def get_capture(self, capture_id: int) -> base.CapturedRequest | None:
        row = await self._fetchone("SELECT * FROM bin_requests WHERE capture_id = ?", (capture_id,))
        return _capture(row) if row else None

    # --- end of the /inspect block ---------------------------------------------------------------


def _insert_trigger(conn: sqlite3.Connection, trigger: models.Trigger, run_id: str | None) -> None:
    conn.execute(
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


def _insert_run(
    conn: sqlite3.Connection,
    run: base.NewRun,
    now: float,
    trigger_id: str | None,
    owner: str | None = None,
) -> sqlite3.Row:
    """``owner``: the lease's, for a run stored already claimed (``run.lease_until``)."""
    if run.if_thread_idle and run.thread_id is not None:
        with closing(
            conn.execute(
                "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running')",
                (run.thread_id,),
            )
        ) as cursor:
            if cursor.fetchone() is not None:
                raise errors.Conflict(f"thread {run.thread_id} has a pending or running run")
    with closing(
        conn.execute(
            "INSERT INTO runs (run_id, thread_id, flow_id, status, input, kwargs, metadata,"
            " created_at, updated_at, trigger_id, attempt, started_at, lease_expires_at,"
            " lease_owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                run.run_id,
                run.thread_id,
                run.flow_id,
                "pending" if run.lease_until is None else "running",
                _dumps(run.input),
                _dumps(run.kwargs),
                _dumps(run.metadata),
                now + run.after_seconds,
                now,
                trigger_id,
                0 if run.lease_until is None else 1,
                None if run.lease_until is None else now,
                run.lease_until,
                None if run.lease_until is None else owner,
            ),
        )
    ) as cursor:
        row: sqlite3.Row | None = cursor.fetchone()
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
        cancel_reason=row["cancel_reason"],
    )


def _endpoint(row: sqlite3.Row, secrets: SecretBox) -> models.Endpoint:
    fields = dict(row)
    fields["secret"] = secrets.open(fields["secret"])
    if fields["previous_secret"] is not None:
        fields["previous_secret"] = secrets.open(fields["previous_secret"])
    fields["flow_ids"] = tuple(_loads(fields["flow_ids"]))
    fields["event_types"] = tuple(_loads(fields["event_types"]))
    forward = _loads(fields["forward_headers"])
    fields["forward_headers"] = None if forward is None else tuple(forward)
    schedule = _loads(fields["retry_schedule"])
    fields["retry_schedule"] = None if schedule is None else tuple(schedule)
    fields["enabled"] = bool(fields["enabled"])
    return models.Endpoint(**fields)


def _resealed(secrets: SecretBox, stored: str) -> str:
    return stored if secrets.is_current(stored) else secrets.seal(secrets.open(stored))


def _event(row: sqlite3.Row) -> models.Event:
    return models.Event(
        id=row["id"],
        run_id=row["run_id"],
        event=row["event"],
        data=_loads(row["data"]),
        created_at=row["created_at"],
    )


def _insert(conn: sqlite3.Connection, table: str, columns: dict[str, Any]) -> None:
    """INSERT one row from a column → value mapping (column names are ours, never input)."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))


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


def _insert_deliveries(
    conn: sqlite3.Connection,
    run_id: str | None,
    deliveries: Sequence[models.NewDelivery],
    now: float,
) -> None:
    conn.executemany(
        "INSERT INTO deliveries (delivery_id, run_id, endpoint_id, url, event_type, payload,"
        " status, attempts, next_attempt_at, created_at, updated_at, origin_at, headers)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)",
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
                _dumps(d.headers) if d.headers else None,
            )
            for d in deliveries
        ],
    )


def record_outcome(
    conn: sqlite3.Connection, delivery: models.Delivery, outcome: base.AttemptOutcome
) -> base.HealthChange | None:
    """Store the outcome of try ``delivery.attempts``, the delivery's new state and its
    endpoint's health, releasing the lease (``record_attempt``, and a pull consumer's ack)."""
    result = outcome.result
    ended_at = result.started_at + result.duration_ms / 1000
    with closing(
        conn.execute(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?,"
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
        )
    ) as cursor:
        row: sqlite3.Row | None = cursor.fetchone()
    if row is None:
        return None
    # The try the claim started; one already settled as unknown takes its real outcome.
    conn.execute(
        "UPDATE attempts SET started_at = ?, duration_ms = ?, status_code = ?,"
        " response_headers = ?, response_body = ?, error = ?"
        " WHERE delivery_id = ? AND attempt = ? AND status_code IS NULL"
        " AND (error IS NULL OR error = ?)",
        (
            result.started_at,
            result.duration_ms,
            result.status_code,
            _dumps(result.response_headers),
            result.response_body,
            result.error,
            delivery.delivery_id,
            delivery.attempts,
            base.ATTEMPT_OUTCOME_UNKNOWN,
        ),
    )
    if delivery.endpoint_id is None or outcome.health is None:
        return None
    return _update_health(conn, delivery.endpoint_id, outcome, ended_at)


def _update_health(
    conn: sqlite3.Connection, endpoint_id: str, outcome: base.AttemptOutcome, now: float
) -> base.HealthChange | None:
    """Move the endpoint's failure streak (outbox/health.py decides) in the attempt's transaction."""
    with closing(
        conn.execute(
            "SELECT consecutive_failures, failing_since, circuit_open_until, disabled_reason"
            " FROM endpoints WHERE endpoint_id = ?",
            (endpoint_id,),
        )
    ) as cursor:
        row: sqlite3.Row | None = cursor.fetchone()
    if row is None:
        return None
    changed, change = health.after_attempt(health.Health(*row), outcome, now)
    if changed is not None:
        conn.execute(
            "UPDATE endpoints SET consecutive_failures = ?, failing_since = ?,"
            " circuit_open_until = ?, disabled_reason = ? WHERE endpoint_id = ?",
            (
                changed.consecutive_failures,
                changed.failing_since,
                changed.circuit_open_until,
                changed.disabled_reason,
                endpoint_id,
            ),
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
      AND (:run_id IS NULL OR d.run_id = :run_id)
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= :now)
      AND (e.endpoint_id IS NULL OR (e.enabled = 1 AND e.disabled_reason IS NULL
           AND COALESCE(e.circuit_open_until, 0) <= :now AND e.mode = 'push'))
)
UPDATE deliveries SET lease_expires_at = :lease, lease_owner = :owner, updated_at = :now,
    attempts = attempts + 1
WHERE delivery_id IN (
    SELECT due.delivery_id FROM due LEFT JOIN inflight USING (destination)
    WHERE due.position <= due.cap - COALESCE(inflight.n, 0)
    ORDER BY due.next_attempt_at LIMIT :limit
)
RETURNING *
"""

# A try recorded as started whose outcome is not recorded yet (see migration 0008).
_ATTEMPT_OPEN = "status_code IS NULL AND error IS NULL"

# Tries left open on a delivery whose lease ran out: the process sending them stopped.
_SETTLE_ABANDONED_ATTEMPTS = (
    "UPDATE attempts SET error = :unknown WHERE "
    + _ATTEMPT_OPEN
    + " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.delivery_id = attempts.delivery_id"
    " AND COALESCE(d.lease_expires_at, 0) <= :now)"
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
        origin_at=row["origin_at"],
        headers=_loads(row["headers"]) or {},
    )


# --- /inspect: row mapping (gateway/inspect/; migration 0006) ------------------------------------

_BINS = (
    "SELECT b.*, (SELECT COUNT(*) FROM bin_requests r WHERE r.bin_id = b.bin_id) AS captures"
    " FROM bins b"
)


def _trigger(row: sqlite3.Row) -> models.Trigger:
    fields = dict(row)
    fields["headers"] = _loads(fields["headers"])
    return models.Trigger(**fields)


def _bin(row: sqlite3.Row) -> base.Bin:
    return base.Bin(
        bin_id=row["bin_id"],
        name=row["name"],
        created_at=row["created_at"],
        reply_status=row["reply_status"],
        reply_delay=row["reply_delay"],
        verify_with=row["verify_with"],
        captures=row["captures"],
    )


def _capture(row: sqlite3.Row) -> base.CapturedRequest:
    return base.CapturedRequest(
        capture_id=row["capture_id"],
        bin_id=row["bin_id"],
        received_at=row["received_at"],
        method=row["method"],
        path=row["path"],
        query=row["query"],
        headers=_loads(row["headers"]),
        body=bytes(row["body"]),
        content_type=row["content_type"],
        source=row["source"],
    )


# --- LangGraph threads and crons (issue 5) -------------------------------------------------

# A thread is busy while it has a pending or running run; otherwise its last ended run says
# how it is: success → idle, interrupted → interrupted, error or timeout → error.
_THREADS = """
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
# A pending run on a thread waits for the thread's running run and for every earlier pending
# one (LangGraph's multitask "enqueue": one run at a time per thread, first come first served).
_THREAD_IS_FREE = (
    "(runs.thread_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs o"
    " WHERE o.thread_id = runs.thread_id AND o.run_id != runs.run_id"
    " AND (o.status = 'running' OR (o.status = 'pending' AND (o.created_at < runs.created_at"
    " OR (o.created_at = runs.created_at AND o.run_id < runs.run_id))))))"
)
_THREAD_SORTS = ("thread_id", "status", "created_at", "updated_at")
_CRON_SORTS = ("cron_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at")


# Every (key, value) of the wanted object is in the row's metadata. Keys are matched as the
# JSON text both sides were written with (``fullkey``), never parsed as a path, so any key
# (quotes, backslashes, NUL, dots, brackets) means itself; values match by JSON type (numbers
# as numbers) and value. The filter is one parameter, however many keys it has.
_JSON_KIND = "CASE {0}.type WHEN 'integer' THEN 'real' ELSE {0}.type END"
_METADATA_CONTAINS = (
    "NOT EXISTS (SELECT 1 FROM json_each(?) AS wanted WHERE NOT EXISTS ("
    " SELECT 1 FROM json_each(metadata) AS have WHERE have.fullkey = wanted.fullkey"
    f" AND {_JSON_KIND.format('have')} = {_JSON_KIND.format('wanted')}"
    " AND have.value IS wanted.value))"
)


def _metadata_filters(metadata: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    if not metadata:
        return [], []
    return [_METADATA_CONTAINS], [_dumps(dict(metadata))]


def _thread_filters(search: base.ThreadSearch) -> tuple[str, list[Any]]:
    clauses, params = _metadata_filters(search.metadata)
    if search.ids:
        clauses.append("thread_id IN (SELECT value FROM json_each(?))")
        params.append(_dumps(list(search.ids)))
    if search.status is not None:
        clauses.append("status = ?")
        params.append(search.status)
    return " AND ".join(clauses) or "1 = 1", params


def _cron_filters(search: base.CronSearch) -> tuple[str, list[Any]]:
    clauses, params = _metadata_filters(search.metadata)
    for column, value in (("flow_id", search.flow_id), ("thread_id", search.thread_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if search.enabled is not None:
        clauses.append("enabled = ?")
        params.append(int(search.enabled))
    return " AND ".join(clauses) or "1 = 1", params


def _thread(row: sqlite3.Row) -> base.Thread:
    return base.Thread(
        thread_id=row["thread_id"],
        metadata=_loads(row["metadata"]),
        config=_loads(row["config"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        ttl=_loads(row["ttl"]),
    )


def _cron_columns(cron: base.Cron) -> dict[str, Any]:
    columns = {}
    for field in dataclasses.fields(cron):
        value = getattr(cron, field.name)
        columns[field.name] = (
            _dumps(value) if field.name in ("payload", "metadata") else _column_value(value)
        )
    return columns


def _cron(row: sqlite3.Row) -> base.Cron:
    fields = dict(row)
    fields["payload"] = _loads(fields["payload"])
    fields["metadata"] = _loads(fields["metadata"])
    fields["enabled"] = bool(fields["enabled"])
    return base.Cron(**fields)
