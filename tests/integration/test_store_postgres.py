"""What the PostgreSQL store promises beyond the contract: N writers on one database.

Each test opens two or more stores (two pools, as two processes would) on one fresh database
and races them; the single-writer rules must hold across them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import structlog.testing
from aiohttp.test_utils import TestClient

from gateway import errors, models
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import base, store_from_url, thread_store
from gateway.store.changes import Changes
from gateway.store.postgres import PostgresStore, pool
from tests import pg
from tests.database import raw
from tests.integration.store_contract.common import (
    CLAIM,
    NOW,
    SECRET_KEY,
    endpoint,
    new_delivery,
    new_run,
    trigger,
)

HEALTH = base.HealthPolicy(
    circuit_failure_threshold=100, circuit_cooldown_seconds=60, disable_after_seconds=3600
)


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Two stores on one database, opened together."""
    opened = [PostgresStore(postgres_url, SECRET_KEY, max_size=4) for _ in range(2)]
    await asyncio.gather(*(store.open() for store in opened))
    yield opened
    for store in opened:
        await store.close()


async def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    many = [PostgresStore(postgres_url, SECRET_KEY, min_size=1, max_size=1) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in many))
    finally:
        for store in many:
            await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        versions = await conn.fetch("SELECT version FROM schema_version")
    finally:
        await conn.close()
    expected = [int(script.name.split("_", 1)[0]) for script in pool.MIGRATIONS]
    assert [row["version"] for row in versions] == expected
    assert await PostgresStore(postgres_url).migrate() == []


async def test_processes_starting_together_seal_plaintext_secrets_once(postgres_url: str) -> None:
    first = PostgresStore(postgres_url, SECRET_KEY, max_size=1)
    await first.open()
    created = [await first.create_endpoint(endpoint(secret=f"whsec_{n}")) for n in range(5)]
    await first.close()
    await raw(postgres_url, "UPDATE endpoints SET secret = 'whsec_' || endpoint_id")

    many = [PostgresStore(postgres_url, SECRET_KEY, min_size=1, max_size=1) for _ in range(4)]
    try:
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(*(store.open() for store in many))
        read = [await store.get_endpoint(e.endpoint_id) for store in many for e in created]
    finally:
        for store in many:
            await store.close()
    assert [e.secret for e in read if e] == [f"whsec_{e.endpoint_id}" for e in created] * 4
    assert [
        entry["endpoints"] for entry in logs if entry["event"] == "endpoint_secrets_sealed"
    ] == [5]
    assert not any(
        "whsec_" in secret for (secret,) in await raw(postgres_url, "SELECT secret FROM endpoints")
    )


async def test_one_dedup_key_ingested_at_once_starts_one_run(
    stores: list[PostgresStore],
) -> None:
    results = await asyncio.gather(
        *(
            stores[n % 2].create_trigger_and_run(trigger("same-key"), new_run(), NOW)
            for n in range(30)
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({run.run_id for run, _ in results}) == 1


async def test_claimers_never_share_a_run(stores: list[PostgresStore]) -> None:
    for _ in range(60):
        await stores[0].create_run(new_run(), NOW)
    batches = await asyncio.gather(*(stores[n % 2].claim_runs(7, NOW, 30) for n in range(12)))
    ids = [run.run_id for batch in batches for run in batch]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 60


async def test_a_thread_runs_one_run_at_a_time_across_claimers(
    stores: list[PostgresStore],
) -> None:
    await stores[0].create_thread(models.Thread("t", {}, {}, NOW, NOW), "raise")
    for n in range(5):
        await stores[n % 2].create_run(new_run(thread_id="t"), NOW + n)
    batches = await asyncio.gather(*(stores[n % 2].claim_runs(10, NOW + 10, 30) for n in range(8)))
    assert len([run for batch in batches for run in batch]) == 1


async def test_a_cron_firing_happens_once_across_schedulers(stores: list[PostgresStore]) -> None:
    cron = models.Cron(
        models.new_id(), "echo", None, "* * * * *", None, {}, {}, None, True, None, NOW, NOW, NOW
    )
    await stores[0].create_cron(cron)
    fired = await asyncio.gather(
        *(
            stores[n % 2].fire_cron(
                thread_store.CronFiring(cron.cron_id, NOW, NOW + 60, new_run()), NOW
            )
            for n in range(10)
        )
    )
    assert len([run for run in fired if run is not None]) == 1
    assert len(await stores[1].list_runs(base.RunSelection())) == 1


async def test_an_endpoint_cap_holds_across_claimers(stores: list[PostgresStore]) -> None:
    capped = await stores[0].create_endpoint(endpoint(max_concurrency=3))
    await stores[0].enqueue_deliveries(
        None, [new_delivery(capped.endpoint_id) for _ in range(40)], NOW
    )
    policy = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5)
    batches = await asyncio.gather(
        *(stores[n % 2].claim_deliveries(2, NOW, 30, policy) for n in range(16))
    )
    claimed = [d.delivery_id for batch in batches for d in batch]
    assert len(claimed) == 3
    assert len(set(claimed)) == 3


async def test_health_counts_every_failure_across_writers(stores: list[PostgresStore]) -> None:
    target = await stores[0].create_endpoint(endpoint())
    await stores[0].enqueue_deliveries(
        None, [new_delivery(target.endpoint_id) for _ in range(20)], NOW
    )
    deliveries = await stores[0].list_deliveries(base.DeliverySelection(), limit=100)
    failed = models.AttemptResult(started_at=NOW, duration_ms=1, status_code=500)
    outcome = base.AttemptOutcome(failed, models.DeliveryStatus.PENDING, NOW + 5, health=HEALTH)
    await asyncio.gather(
        *(stores[n % 2].record_attempt(d, outcome) for n, d in enumerate(deliveries))
    )
    counted = await stores[1].get_endpoint(target.endpoint_id)
    assert counted is not None
    assert counted.consecutive_failures == 20


async def test_a_duplicate_is_a_conflict_and_the_store_goes_on(
    stores: list[PostgresStore],
) -> None:
    run = new_run()
    await stores[0].create_run(run, NOW)
    with pytest.raises(errors.Conflict):
        await stores[1].create_run(run, NOW)
    with pytest.raises(errors.Unprocessable):
        await stores[1].create_run(new_run(flow_id="nul\x00"), NOW)
    assert stores[1].write_backlog() == 0
    assert await stores[1].get_run(run.run_id) is not None


async def test_an_unreachable_database_is_one_clear_error() -> None:
    store = store_from_url("postgresql://hookgate:secret@127.0.0.1:1/nowhere")
    with pytest.raises(
        errors.StoreError, match=r"cannot reach PostgreSQL at 127\.0\.0\.1:1/nowhere"
    ) as caught:
        await store.open()
    assert "secret" not in caught.value.detail


async def test_a_missing_database_is_one_clear_error() -> None:
    store = store_from_url(pg.url_of("hookgate_test_does_not_exist"))
    with pytest.raises(errors.StoreError, match="does not exist"):
        await store.open()


def test_an_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigError, match="'mysql'"):
        store_from_url("mysql://x@localhost/db")


async def test_one_run_needing_an_idle_thread_wins_across_writers(
    stores: list[PostgresStore],
) -> None:
    await stores[0].create_thread(models.Thread("t", {}, {}, NOW, NOW), "raise")
    results = await asyncio.gather(
        *(
            stores[n % 2].create_run(new_run(thread_id="t", if_thread_idle=True), NOW)
            for n in range(10)
        ),
        return_exceptions=True,
    )
    assert len([r for r in results if isinstance(r, models.Run)]) == 1
    assert all(isinstance(r, errors.Conflict) for r in results if not isinstance(r, models.Run))


async def next_change(queue: asyncio.Queue[Changes], timeout: float = 5.0) -> Changes:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_every_process_hears_each_commit_once(stores: list[PostgresStore]) -> None:
    writer, reader = stores
    async with reader.subscribe() as heard:
        run = await writer.create_run(new_run(), NOW)
        change = await next_change(heard)
        assert change.origin == writer.origin != reader.origin
        assert change.kinds == {"run.created": (run.run_id,), "run.queued": (run.run_id,)}
        await writer.claim_runs(10, NOW, 30)
        assert (await next_change(heard)).kinds == {"run.claimed": (run.run_id,)}
        assert await writer.claim_runs(10, NOW, 30) == []
        with pytest.raises(errors.Conflict):
            await writer.create_run(base.NewRun(run.run_id, "echo", {}, {}, {}), NOW)
        ending = base.RunEnding(
            run.run_id, models.RunStatus.SUCCESS, 1, None, [new_delivery()], [("end", "{}")]
        )
        await writer.finish_run(ending, NOW)
        ended = await next_change(heard)  # nothing from the empty claim or the rolled back insert
        assert ended.ids("run.ended") == (run.run_id,)
        assert ended.ids("event.appended") == (run.run_id,)
        assert len(ended.ids("delivery.enqueued") or ()) == 1
        await writer.enqueue_deliveries(None, [new_delivery() for _ in range(100)], NOW)
        assert (await next_change(heard)).kinds == {"delivery.enqueued": None}, "too many to list"
        assert heard.empty()


async def test_a_lost_listener_listens_again_and_says_resync(stores: list[PostgresStore]) -> None:
    writer, reader = stores
    async with reader.subscribe() as heard:
        admin = await asyncpg.connect(reader.url)
        try:
            terminated = await admin.fetchval(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                f"hookgate-listen-{reader.origin}",
            )
            assert terminated == 1
        finally:
            await admin.close()
        assert (await next_change(heard)).resync
        endpoint_ = await writer.create_endpoint(endpoint())
        change = await next_change(heard)
        assert change.ids("endpoint.changed") == (endpoint_.endpoint_id,)


async def test_stores_in_other_schemas_hear_nothing(stores: list[PostgresStore]) -> None:
    async with pg.fresh_schema() as other_url:
        other = PostgresStore(other_url, SECRET_KEY, max_size=1)
        await other.open()
        try:
            async with other.subscribe() as heard:
                await stores[0].create_run(new_run(), NOW)
                mine = await other.create_run(new_run(), NOW)
                assert (await next_change(heard)).ids("run.created") == (mine.run_id,)
                assert heard.empty()
        finally:
            await other.close()


@pytest.mark.parametrize(
    "url", ["postgresql://x@127.0.0.1:port/db", "postgresql://x@127.0.0.1/db?sslmode=bogus"]
)
async def test_an_unusable_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(errors.ConfigError, match="not a usable PostgreSQL URL"):
        await store_from_url(url).open()


async def test_a_value_the_driver_cannot_encode_is_unprocessable(
    stores: list[PostgresStore],
) -> None:
    created = await stores[0].create_endpoint(endpoint())
    with pytest.raises(errors.Unprocessable, match="refused a value"):
        await stores[0].update_endpoint(created.endpoint_id, {"max_concurrency": "many"}, NOW)
    assert await stores[0].get_endpoint(created.endpoint_id) == created


async def test_an_endpoint_cap_holds_while_two_dispatchers_work(
    stores: list[PostgresStore],
) -> None:
    cap, total = 2, 30
    capped = await stores[0].create_endpoint(endpoint(max_concurrency=cap))
    await stores[0].enqueue_deliveries(
        None, [new_delivery(capped.endpoint_id) for _ in range(total)], NOW
    )
    policy = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5)
    ok = models.AttemptResult(started_at=NOW, duration_ms=1, status_code=200)
    leased_at_once: list[int] = []
    watcher = await asyncpg.connect(stores[0].url)
    watching = asyncio.Lock()  # one connection serves one query at a time

    async def send(store: PostgresStore, delivery: models.Delivery) -> None:
        await asyncio.sleep(0.005)
        await store.record_attempt(
            delivery, base.AttemptOutcome(ok, models.DeliveryStatus.SUCCEEDED)
        )

    async def dispatch(store: PostgresStore) -> None:
        while True:
            claimed = await store.claim_deliveries(5, NOW, 30, policy)
            if claimed:
                async with watching:
                    leased = await watcher.fetchval(
                        "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
                        " AND lease_expires_at > $1",
                        NOW,
                    )
                leased_at_once.append(leased)
                await asyncio.gather(*(send(store, d) for d in claimed))
            elif not await store.list_deliveries(
                base.DeliverySelection(statuses=(models.DeliveryStatus.PENDING,))
            ):
                return
            else:
                await asyncio.sleep(0.002)

    try:
        await asyncio.wait_for(asyncio.gather(*(dispatch(s) for s in stores for _ in range(2))), 30)
    finally:
        await watcher.close()
    assert max(leased_at_once) <= cap
    done = await stores[1].list_deliveries(base.DeliverySelection(), limit=100)
    assert [(d.status, d.attempts) for d in done] == [("succeeded", 1)] * total


# A database that cannot take the work: every API answers 503 with Retry-After, /healthz says
# so, and both recover by themselves once it can. Each outage is a real one, applied to a role
# only this test uses: it may not connect at all, or only read (as a standby does); its open
# sessions end, as they do when a server restarts or fails over.
OUTAGES = {
    "connections refused": (
        "ALTER ROLE {role} CONNECTION LIMIT 0",
        "ALTER ROLE {role} CONNECTION LIMIT -1",
    ),
    "read-only": (
        "ALTER ROLE {role} SET default_transaction_read_only = on",
        "ALTER ROLE {role} RESET default_transaction_read_only",
    ),
}


WRITES = [
    ("/api/v1/webhook/echo", {"n": 1}),
    ("/threads", {"metadata": {"n": 1}}),
    ("/runs", {"assistant_id": "echo", "input": {"n": 1}}),
    ("/api/v1/endpoints", {"url": "http://127.0.0.1:9/y"}),
]


async def assert_unavailable(response: Any) -> None:
    assert response.status == 503, await response.text()
    assert int(response.headers["Retry-After"]) > 0
    assert "retry later" in (await response.json())["detail"]


async def eventually_healthy(client: TestClient[Any, Any], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (health := await client.get("/healthz")).status != 200:
        assert asyncio.get_running_loop().time() < deadline, await health.text()
        await asyncio.sleep(0.05)
    assert (await health.json())["status"] == "ok"


@pytest.mark.parametrize("outage", OUTAGES)
async def test_an_unavailable_database_is_a_503_until_it_comes_back(
    outage: str,
    postgres_url: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    make_settings: Callable[..., Settings],
) -> None:
    start, end = OUTAGES[outage]
    async with pg.own_role(postgres_url) as role:
        settings = make_settings(database_url=role.url, secret_key=SECRET_KEY)
        client = await aiohttp_client(create_app(settings))
        created = await client.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x"})
        assert created.status == 201, await created.text()

        await role.admin(start)
        await role.disconnect()
        for path, body in WRITES:
            await assert_unavailable(await client.post(path, json=body))
        health = await client.get("/healthz")
        await assert_unavailable(health)
        assert (await health.json())["status"] == "unavailable"
        listed = await client.get("/api/v1/endpoints")
        if outage == "read-only":  # reads still answer
            assert [e["url"] for e in await listed.json()] == ["http://127.0.0.1:9/x"]
        else:
            await assert_unavailable(listed)

        await role.admin(end)
        await role.disconnect()
        await eventually_healthy(client)
        accepted = await client.post("/api/v1/webhook/echo", json={"n": 2})
        assert accepted.status == 202, await accepted.text()
        await client.close()


async def test_only_what_may_pass_counts_as_unavailable(postgres_url: str) -> None:
    """Real errors of the server: a refused value or a bug is not an outage; a full disk
    (PostgreSQL says "could not extend file", SQLSTATE 53100) or a shutdown is."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE t (x text PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES ('a')")
        refused = []
        for sql in ("INSERT INTO t VALUES ('a')", "INSERT INTO", "SELECT 1/0"):
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(sql)
            refused.append(caught.value)
        with pytest.raises(asyncpg.PostgresError) as caught:
            async with conn.transaction(readonly=True):
                await conn.execute("INSERT INTO t VALUES ('b')")
        read_only = caught.value
    finally:
        await conn.close()
    assert not any(pool.is_unavailable(exc) for exc in refused)
    assert pool.is_unavailable(read_only)
    for outage in (
        asyncpg.DiskFullError('could not extend file "base/1/2": No space left on device'),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ):
        assert pool.is_unavailable(outage)
    with pytest.raises(errors.StoreUnavailable, match="retry later"), pool.translated(postgres_url):
        raise asyncpg.DiskFullError("could not extend file")


async def test_claims_skip_rows_another_transaction_holds_rather_than_wait(
    stores: list[PostgresStore], postgres_url: str
) -> None:
    """A row a writer holds (a try being recorded, a run ending) is left to the next claim:
    the claim neither waits for that writer nor takes a row it may be ending."""
    store = stores[0]
    held_delivery, free_delivery = new_delivery(), new_delivery()
    await store.enqueue_deliveries(None, [held_delivery, free_delivery], NOW)
    held_run = await store.create_run(new_run(), NOW)
    free_run = await store.create_run(new_run(), NOW)
    writer = await asyncpg.connect(postgres_url)
    try:
        async with writer.transaction():
            await writer.execute(
                "SELECT 1 FROM deliveries WHERE delivery_id = $1 FOR UPDATE",
                held_delivery.delivery_id,
            )
            await writer.execute("SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE", held_run.run_id)
            deliveries, runs = await asyncio.wait_for(
                asyncio.gather(
                    store.claim_deliveries(10, NOW, 30, CLAIM), store.claim_runs(10, NOW, 30)
                ),
                timeout=60,
            )
    finally:
        await writer.close()
    assert [d.delivery_id for d in deliveries] == [free_delivery.delivery_id]
    assert [r.run_id for r in runs] == [free_run.run_id]
