"""A store that cannot write (disk full, read-only) answers 503 with ``Retry-After`` on every API,
and ``/healthz`` says so until writes get through again; so it does while the store is
unreachable.

The failures are SQLite's own, raised on the gateway's writer connection: ``max_page_count``
capped at the file's current size makes every insert that needs a page fail with SQLITE_FULL
("database or disk is full"), exactly as a full disk does; ``query_only`` makes every write fail
with SQLITE_READONLY. Lifting the cap or the flag is the space (or the disk) coming back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import errors
from gateway.api import problems
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import store_from_url
from gateway.store.sqlite import SQLiteStore
from gateway.store.writer import is_storage_failure

FILLER = "x" * 3000  # fills a page in a couple of requests
BIG_METADATA = {"note": "y" * 6000}  # more than a page: a row carrying it needs a fresh one
MAX_FILL_REQUESTS = 300


async def on_writer(store: SQLiteStore, sql: str) -> None:
    """Run a per-connection PRAGMA on the store's own writer connection, between two batches
    (aiosqlite runs one call at a time on it). Not as a writer job: a read-only connection
    cannot even begin the batch that would make it writable again."""
    conn = store._writer_conn
    assert conn is not None
    await conn.execute_fetchall(sql)


async def cap_at_current_size(store: SQLiteStore) -> None:
    # SQLite never lowers the cap below the pages in use, so 1 means "no page more than now".
    await on_writer(store, "PRAGMA max_page_count = 1")


async def lift_cap(store: SQLiteStore) -> None:
    await on_writer(store, "PRAGMA max_page_count = 1073741823")


async def make_read_only(store: SQLiteStore) -> None:
    await on_writer(store, "PRAGMA query_only = ON")


async def make_writable(store: SQLiteStore) -> None:
    await on_writer(store, "PRAGMA query_only = OFF")


FAILURES: dict[str, tuple[Callable[[SQLiteStore], Awaitable[None]], ...]] = {
    "disk full": (cap_at_current_size, lift_cap),
    "read-only": (make_read_only, make_writable),
}


@pytest.fixture
def gateway_database_url(tmp_path: Path) -> str:
    """SQLite on every run: these failures are SQLite's own (PostgreSQL's outages are tested in
    test_store_postgres.py)."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
async def store_and_client(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> tuple[SQLiteStore, TestClient[Any, Any]]:
    store = store_from_url(settings.database_url, settings.secret_key)
    assert isinstance(store, SQLiteStore)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, store=store))
    return store, client


async def fill_until_refused(client: TestClient[Any, Any]) -> None:
    """Create threads (rows that start no run, so no background write) until the store refuses
    one: at once when read-only, once the pages are used up when full."""
    for _ in range(MAX_FILL_REQUESTS):
        response = await client.post("/threads", json={"metadata": {"filler": FILLER}})
        if response.status == 503:
            return
        assert response.status == 200, await response.text()
    pytest.fail(f"the store still took writes after {MAX_FILL_REQUESTS} threads")


async def assert_unavailable(response: Any) -> None:
    assert response.status == 503, await response.text()
    assert int(response.headers["Retry-After"]) > 0
    body = await response.json()
    assert "retry later" in body["detail"]


async def refuse_writes(failure: str, store: SQLiteStore, client: TestClient[Any, Any]) -> None:
    await FAILURES[failure][0](store)
    await fill_until_refused(client)


@pytest.mark.parametrize("failure", FAILURES)
async def test_every_api_answers_503_while_the_store_cannot_write(
    failure: str, store_and_client: tuple[SQLiteStore, TestClient[Any, Any]]
) -> None:
    store, client = store_and_client
    await refuse_writes(failure, store, client)

    writes = [
        client.post("/api/v1/webhook/echo", json=BIG_METADATA),
        client.post("/api/v1/run/echo", json={"input_value": BIG_METADATA["note"]}),
        client.post("/threads", json={"metadata": BIG_METADATA}),
        client.post("/runs", json={"assistant_id": "echo", "input": BIG_METADATA}),
        client.post(
            "/api/v1/endpoints",
            json={"url": "http://127.0.0.1:9/hook", "description": BIG_METADATA["note"]},
        ),
    ]
    for write in writes:
        await assert_unavailable(await write)

    health = await client.get("/healthz")
    await assert_unavailable(health)
    assert (await health.json())["status"] == "unavailable"
    # Reads still answer, and nothing the refused writes carried was stored.
    threads = await client.post("/threads/search", json={"metadata": BIG_METADATA})
    assert threads.status == 200
    assert await threads.json() == []
    endpoints = await client.get("/api/v1/endpoints")
    assert endpoints.status == 200
    assert BIG_METADATA["note"] not in await endpoints.text()

    await FAILURES[failure][1](store)
    accepted = await client.post("/api/v1/webhook/echo", json=BIG_METADATA)
    assert accepted.status == 202, await accepted.text()
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"


@pytest.mark.parametrize("failure", FAILURES)
async def test_healthz_probes_until_the_store_writes_again(
    failure: str, store_and_client: tuple[SQLiteStore, TestClient[Any, Any]]
) -> None:
    """Once unhealthy, a load balancer sends no more traffic: /healthz itself must notice the
    space coming back, by a probe write, not wait for a trigger that never arrives."""
    store, client = store_and_client
    await refuse_writes(failure, store, client)
    for _ in range(2):  # the probe fails too while the storage still refuses
        await assert_unavailable(await client.get("/healthz"))

    await FAILURES[failure][1](store)
    health = await client.get("/healthz")
    assert health.status == 200, await health.text()
    assert store.writer.write_failure is None


async def test_healthz_is_503_while_the_store_is_unreachable(
    store_and_client: tuple[SQLiteStore, TestClient[Any, Any]],
) -> None:
    """The store's connections gone (as a database server going away): 503 with the reason,
    and 200 again once it is back."""
    store, client = store_and_client
    assert (await client.get("/healthz")).status == 200
    await store.close()
    try:
        health = await client.get("/healthz")
        assert health.status == 503
        body = await health.json()
        assert (body["status"], body["detail"]) == ("unavailable", "the store is not open")
    finally:
        await store.open()
    health = await client.get("/healthz")
    assert (health.status, (await health.json())["status"]) == (200, "ok")


async def test_the_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "probe.db")
    await store.open()
    try:
        store.writer.write_failure = "database or disk is full"  # as left by a refused write
        await store.ping()
        assert store.writer.write_failure is None
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "probe.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not any("probe" in name for name in tables)


def test_only_storage_failures_count_as_unavailable(tmp_path: Path) -> None:
    """Real SQLite errors: full and read-only are the storage's; a constraint, a syntax error or
    a lock are not (a lock is retried, the others are bugs or bad input)."""
    path = tmp_path / "classify.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES ('a')")

    def error_of(run: Callable[[], object]) -> sqlite3.Error:
        with pytest.raises(sqlite3.Error) as caught:
            run()
        return caught.value

    full = sqlite3.connect(path)
    full.execute("PRAGMA max_page_count = 1")
    full_error = error_of(lambda: full.execute("INSERT INTO t VALUES (?)", ("b" * 9000,)))
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    read_only_error = error_of(lambda: read_only.execute("INSERT INTO t VALUES ('c')"))
    plain = sqlite3.connect(path)
    constraint = error_of(lambda: plain.execute("INSERT INTO t VALUES ('a')"))
    syntax = error_of(lambda: plain.execute("INSERT INTO"))
    for conn in (full, read_only, plain):
        conn.close()

    assert is_storage_failure(full_error)
    assert is_storage_failure(read_only_error)
    assert not is_storage_failure(constraint)
    assert not is_storage_failure(syntax)
    assert issubclass(errors.StoreUnavailable, errors.StoreError)
    assert problems.status_of(errors.StoreUnavailable()) == 503
