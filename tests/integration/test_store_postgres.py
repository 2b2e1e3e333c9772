"""What the PostgreSQL store promises beyond the contract: N writers on one database.

Each test opens two or more stores (two pools, as two processes would) on one fresh database
and races them; the single-writer rules must hold across them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway import errors, models
from gateway.store import base, store_from_url
from gateway.store.changes import Changes
from gateway.store.postgres import PostgresStore
from tests import pg
from tests.integration.store_contract.common import NOW, endpoint, new_delivery, new_run, trigger

HEALTH = base.HealthPolicy(
    circuit_failure_threshold=100, circuit_cooldown_seconds=60, disable_after_seconds=3600
)


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Two stores on one database, opened together."""
    opened = [PostgresStore(postgres_url, max_size=4) for _ in range(2)]
    await asyncio.gather(*(store.open() for store in opened))
    yield opened
    for store in opened:
        await store.close()


async def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    many = [PostgresStore(postgres_url, min_size=1, max_size=1) for _ in range(4)]
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
    assert [row["version"] for row in versions] == [1]
    assert await PostgresStore(postgres_url).migrate() == []


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
    await stores[0].create_thread(base.Thread("t", {}, {}, NOW, NOW), "raise")
    for n in range(5):
        await stores[n % 2].create_run(new_run(thread_id="t"), NOW + n)
    batches = await asyncio.gather(*(stores[n % 2].claim_runs(10, NOW + 10, 30) for n in range(8)))
    assert len([run for batch in batches for run in batch]) == 1


async def test_a_cron_firing_happens_once_across_schedulers(stores: list[PostgresStore]) -> None:
    cron = base.Cron(
        models.new_id(), "echo", None, "* * * * *", None, {}, {}, None, True, None, NOW, NOW, NOW
    )
    await stores[0].create_cron(cron)
    fired = await asyncio.gather(
        *(
            stores[n % 2].fire_cron(base.CronFiring(cron.cron_id, NOW, NOW + 60, new_run()), NOW)
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
    await stores[0].create_thread(base.Thread("t", {}, {}, NOW, NOW), "raise")
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
            run.run_id, models.RunStatus.SUCCESS, 1, None, [new_delivery()], ("end", {})
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
        other = PostgresStore(other_url, max_size=1)
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

    async def send(store: PostgresStore, delivery: models.Delivery) -> None:
        await asyncio.sleep(0.005)
        await store.record_attempt(
            delivery, base.AttemptOutcome(ok, models.DeliveryStatus.SUCCEEDED)
        )

    async def dispatch(store: PostgresStore) -> None:
        while True:
            claimed = await store.claim_deliveries(5, NOW, 30, policy)
            if claimed:
                leased_at_once.append(
                    await watcher.fetchval(
                        "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
                        " AND lease_expires_at > $1",
                        NOW,
                    )
                )
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
