"""The PostgreSQL connection pool, its migrations, the change feed, and where database errors
become gateway errors.

Every verb of the PostgreSQL store is one transaction on a pooled connection (or one statement
for reads). Nothing here batches: PostgreSQL takes concurrent commits from many connections and
many processes, so the rules a single SQLite writer gave for free are written as row locks,
``ON CONFLICT`` and advisory locks where each verb needs them.

Each write transaction sends at most one ``NOTIFY`` (kinds and ids, delivered at commit, never
if it rolls back); one connection per process listens and hands them to the ``ChangeFeed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
import structlog
import tenacity

from gateway import errors
from gateway.store import local_state_dir, sql
from gateway.store.changes import RESYNC, ChangeFeed, Changes, changes
from gateway.store.secretbox import SecretBox

log = structlog.get_logger(__name__)

MIGRATIONS = sql.migrations("gateway.store.postgres")

# Advisory locks take two int4 keys: the purpose ("hook" in ASCII, then one per purpose) and
# SCHEMA_KEY, so stores in other schemas of one database never wait on each other's locks.
MIGRATION_LOCK = 0x686F6F6B
DELIVERY_CLAIM_LOCK = MIGRATION_LOCK + 1
SCHEMA_KEY = "hashtext(current_schema())"


def keyed_lock(key_sql: str) -> str:
    """SQL taking a transaction-level advisory lock on a value (``key_sql``, SQL text) in this
    schema: writers of one key queue, writers of other keys do not wait."""
    return (
        "SELECT pg_advisory_xact_lock("
        f"hashtextextended(current_schema() || chr(31) || {key_sql}, 0))"
    )


CHANNEL_PREFIX = "hookgate_changes"
MAX_PAYLOAD = 7900  # NOTIFY's limit is 8000 bytes
RELISTEN_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)

Record = asyncpg.Record
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

# Connection-level failures: the database is down, unreachable or refused us. The driver's
# internal error comes from a connection the server ended while it was idle in the pool (its
# protocol state is then unusable); the pool replaces that connection.
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)


def describe(url: str) -> str:
    """``host:port/db`` of a URL, never its password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(an unreadable URL)"
    return f"{host}:{port}{parts.path or '/'}"


@contextlib.contextmanager
def translated(url: str) -> Iterator[None]:
    """Database errors leave the store as ``gateway.errors`` types, with no driver in them."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise errors.Conflict(f"already exists: {exc.detail or exc}") from None
    except asyncpg.exceptions.DataError as exc:
        # A value PostgreSQL cannot hold (a NUL character in text, an out-of-range number).
        raise errors.Unprocessable(f"the database refused a value: {exc}") from None
    except asyncpg.PostgresError as exc:
        if is_unavailable(exc):
            raise unavailable(url, exc) from None
        raise errors.StoreError(f"PostgreSQL error {exc.sqlstate}: {exc}") from None
    except ValueError as exc:
        # The driver could not encode a value for its column (asyncpg's client-side DataError).
        raise errors.Unprocessable(f"the database refused a value: {exc}") from None
    except _UNREACHABLE as exc:
        raise unavailable(url, exc) from None


# SQLSTATEs of a server that cannot take the work now, and may later: its connection is lost
# or refused (08), it is out of disk, memory or connections (53: disk full and "could not
# extend file" are 53100), an operator shut it down (57P), it failed at the OS level (58), or
# it only reads (25006: a standby, or default_transaction_read_only).
_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58")
_READ_ONLY = "25006"


def is_unavailable(exc: asyncpg.PostgresError) -> bool:
    state = exc.sqlstate or ""
    return state == _READ_ONLY or state.startswith(_UNAVAILABLE_CLASSES)


def unavailable(url: str, exc: BaseException) -> errors.StoreUnavailable:
    """What callers get instead of the driver's error: 503 with ``Retry-After``."""
    detail = str(exc) or type(exc).__name__
    return errors.StoreUnavailable(
        f"PostgreSQL at {describe(url)} cannot take this now: {detail}; retry later"
    )


class Database:
    """A pool of connections to one database; the verbs of each aggregate build on it."""

    def __init__(
        self, url: str, secret_key: str = "", *, min_size: int = 1, max_size: int = 10
    ) -> None:
        """``secret_key``: ``GATEWAY_SECRET_KEY``, the keys sealing endpoint secrets at rest."""
        self.url = url
        self.secret_key = secret_key
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._writes = 0
        self.origin = secrets.token_hex(8)
        self.feed = ChangeFeed()
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False
        self.channel = CHANNEL_PREFIX
        self._secrets: SecretBox | None = None
        self.write_failure: str | None = None

    @property
    def secrets(self) -> SecretBox:
        if self._secrets is None:
            raise errors.StoreError("the store is not open")
        return self._secrets

    # lifecycle

    async def open(self) -> None:
        self._secrets = SecretBox.for_database(self.secret_key, local_state_dir(self.url))
        pool = await self._connect()
        try:
            with translated(self.url):
                async with pool.acquire() as conn:
                    await migrate(conn, then=self._on_open)
                    self.channel = channel_for(await conn.fetchval("SELECT current_schema()"))
            self._closing = False
            await self._listen()
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        log.info("store_opened", backend="postgres", database=describe(self.url))

    async def _connect(self) -> asyncpg.Pool:
        try:
            return await self._create_pool()
        except (asyncpg.ClientConfigurationError, ValueError) as exc:
            raise errors.ConfigError(f"database_url: not a usable PostgreSQL URL: {exc}") from None
        except _UNREACHABLE as exc:
            raise errors.StoreError(
                f"cannot reach PostgreSQL at {describe(self.url)}: {exc}"
            ) from None
        except asyncpg.PostgresError as exc:
            raise errors.StoreError(
                f"PostgreSQL at {describe(self.url)} refused the connection: {exc}"
            ) from None

    @tenacity.retry(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, _UNREACHABLE) and not isinstance(exc, ValueError)
        ),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.2, max=1),
        reraise=True,
    )
    async def _create_pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.url, min_size=self.min_size, max_size=self.max_size, timeout=5
        )
        return pool

    async def _on_open(self, conn: Connection) -> None:
        """Under the migration lock, after the migrations: bring stored values to the form this
        version keeps them in (the endpoint verbs seal secrets), once for N processes."""

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; the versions applied."""
        pool = await self._connect()
        try:
            with translated(self.url):
                async with pool.acquire() as conn:
                    return await migrate(conn)
        finally:
            await pool.close()

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
            self._relisten = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(*_UNREACHABLE, asyncpg.PostgresError):
                await listener.close(timeout=2)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # the change feed

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Changes]]:
        """Every commit on this database, this process's and others', as ``Changes``."""
        return self.feed.subscribe()

    async def _listen(self) -> None:
        with translated(self.url):
            listener: asyncpg.Connection = await asyncpg.connect(
                self.url,
                timeout=5,
                server_settings={"application_name": f"hookgate-listen-{self.origin}"},
            )
        try:
            with translated(self.url):
                await listener.add_listener(self.channel, self._heard)
        except BaseException:
            await listener.close()
            raise
        listener.add_termination_listener(self._lost)
        self._listener = listener

    def _heard(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self.feed.publish(Changes.decode(str(payload)))

    def _lost(self, conn: object) -> None:
        """The listening connection died: listen again, and tell subscribers to re-read
        (what was committed meanwhile was not heard)."""
        if self._closing or self._relisten is not None:
            return
        self._listener = None
        self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._listen()
            except errors.StoreError as exc:
                delay = RELISTEN_DELAYS[min(attempt, len(RELISTEN_DELAYS) - 1)]
                log.warning("store_listen_failed", error=exc.detail, retry_in=delay)
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self.feed.publish(RESYNC)
                break
        self._relisten = None

    async def _changed(self, conn: Connection, **kinds: Iterable[str] | None) -> None:
        """Announce this transaction's changes (``run_created=[ids]`` is ``"run.created"``),
        delivered to every listener at commit."""
        change = changes(self.origin, **kinds)
        if not change.kinds:
            return
        payload = change.encode()
        if len(payload) > MAX_PAYLOAD:
            payload = Changes(dict.fromkeys(change.kinds), origin=self.origin).encode()
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)

    def write_backlog(self) -> int:
        """Write transactions started and not yet committed: waiting for a connection or running."""
        return self._writes

    async def ping(self) -> None:
        """Reachable and taking writes: not a standby nor read-only by default, and after a
        refused write, a probe write gets through (a load balancer sends nothing meanwhile, so
        ``/healthz`` itself must notice the database coming back)."""
        read_only = await self._fetchval(
            "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
        )
        if read_only:
            raise errors.StoreUnavailable(
                f"PostgreSQL at {describe(self.url)} only reads (a standby, or read-only by "
                "default); retry later"
            )
        if self.write_failure is not None:
            await self._write(
                "UPDATE schema_version SET applied_at = applied_at"
                " WHERE version = (SELECT MAX(version) FROM schema_version)"
            )

    def _refused(self, exc: errors.StoreUnavailable) -> None:
        if self.write_failure is None:
            log.error("store_unwritable", backend="postgres", error=exc.detail)
        self.write_failure = exc.detail

    def _wrote(self) -> None:
        if self.write_failure is not None:
            log.info("store_writable_again", backend="postgres", after=self.write_failure)
            self.write_failure = None

    # statements

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise errors.StoreError("the store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One write verb: a pooled connection in a transaction, errors translated; a write
        the database cannot take now is remembered for ``ping`` until one gets through."""
        pool = self.pool
        self._writes += 1
        try:
            with translated(self.url):
                async with pool.acquire() as conn, conn.transaction():
                    yield conn
        except errors.StoreUnavailable as exc:
            self._refused(exc)
            raise
        else:
            self._wrote()
        finally:
            self._writes -= 1

    async def _fetch(self, sql: str, *args: Any) -> list[Record]:
        with translated(self.url):
            return list(await self.pool.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Record | None:
        with translated(self.url):
            return await self.pool.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        with translated(self.url):
            return await self.pool.fetchval(sql, *args)

    async def _write(self, sql: str, *args: Any, announce: str = "") -> list[Record]:
        """One write statement in its own transaction; the rows it returns. With ``announce``
        (a kind such as ``"endpoint_changed"``), the first column of each row is announced."""
        async with self._transaction() as conn:
            found = list(await conn.fetch(sql, *args))
            if announce and found:
                await self._changed(conn, **{announce: [str(row[0]) for row in found]})
            return found


async def migrate(
    conn: Connection, then: Callable[[Connection], Awaitable[None]] | None = None
) -> list[int]:
    """Apply the missing migrations, each in its own transaction, under an advisory lock so
    that N processes starting together apply each one once; ``then`` runs under the lock too."""
    await conn.execute(f"SELECT pg_advisory_lock($1, {SCHEMA_KEY})", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        applied = []
        for script in MIGRATIONS:
            number = sql.version(script)
            if number > current:
                async with conn.transaction():
                    await conn.execute(script.read_text())
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                log.info("store_migrated", backend="postgres", version=number)
                applied.append(number)
        if then is not None:
            await then(conn)
        return applied
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock($1, {SCHEMA_KEY})", MIGRATION_LOCK)


def channel_for(schema: str | None) -> str:
    """The NOTIFY channel of the store in ``schema``: stores in other schemas of the same
    database (channels are per database) do not hear each other."""
    channel = f"{CHANNEL_PREFIX}.{schema or ''}"
    if len(channel.encode()) > 63:  # the longest identifier PostgreSQL keeps
        channel = f"{CHANNEL_PREFIX}.{hashlib.sha256(channel.encode()).hexdigest()[:32]}"
    return channel


def placeholders(start: int, count: int) -> str:
    """``$start, …`` for ``count`` parameters."""
    return ", ".join(f"${n}" for n in range(start, start + count))


_NAME = re.compile(r"[a-z_]+")


def assignments(names: Sequence[str], start: int = 1) -> str:
    """``a = $1, b = $2`` for column names of ours (checked, never from input)."""
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a column name: {name!r}")
    return ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start))
