"""Leases name their owner: only the owner renews or releases them, never once another process
took the work over; a restarted SQLite gateway takes back at once what its predecessor held,
and a second one on the same file is refused. On both backends."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway import errors, models
from gateway.store import base, store_from_url
from tests import pg
from tests.integration.store_contract.common import (
    BACKENDS,
    CLAIM,
    NOW,
    FullStore,
    new_delivery,
    new_run,
)

NewStore = Callable[[], FullStore]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    async with pg.fresh_schema() as url:
        yield url


@pytest.fixture
async def new_store(database_url: str) -> AsyncIterator[NewStore]:
    """Opened stores on one database, each as another process would hold it."""
    opened: list[FullStore] = []

    def make() -> FullStore:
        store: FullStore = store_from_url(database_url)  # type: ignore[assignment]
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def opened(new_store: NewStore) -> FullStore:
    store = new_store()
    await store.open()
    return store


def test_each_store_has_its_own_owner_naming_host_and_pid(tmp_path: Path) -> None:
    first, second = (store_from_url(f"sqlite:///{tmp_path / 'x.db'}") for _ in range(2))
    assert first.owner != second.owner
    host, pid, _ = first.owner.split(":")
    assert host
    assert int(pid) > 0


async def test_only_the_owner_renews_a_run_lease(new_store: NewStore) -> None:
    first, second = await opened(new_store), await opened(new_store)
    run = await first.create_run(new_run(), NOW)
    [claimed] = await first.claim_runs(1, NOW, 10)
    assert await second.renew_run_leases([run.run_id], NOW + 20) == []
    assert await first.renew_run_leases([run.run_id, "unknown"], NOW + 20) == [run.run_id]
    assert await second.claim_runs(1, NOW + 15, 10) == [], "renewed to NOW + 20"
    [taken] = await second.claim_runs(1, NOW + 21, 10)
    assert (taken.run_id, taken.attempt) == (claimed.run_id, 2)
    assert await first.renew_run_leases([run.run_id], NOW + 40) == [], "taken over"
    await first.release_runs([run.run_id], NOW + 22)
    assert await second.claim_runs(1, NOW + 23, 10) == [], "released by a former owner"


async def test_an_ended_run_is_not_renewed(new_store: NewStore) -> None:
    store = await opened(new_store)
    run = await store.create_run(new_run(lease_until=NOW + 10), NOW)
    assert await store.renew_run_leases([run.run_id], NOW + 20) == [run.run_id]
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, None, None, [])
    await store.finish_run(ending, NOW + 1)
    assert await store.renew_run_leases([run.run_id], NOW + 30) == []


async def test_only_the_owner_renews_a_delivery_lease_and_never_a_released_one(
    new_store: NewStore,
) -> None:
    first, second = await opened(new_store), await opened(new_store)
    delivery = new_delivery()
    await first.enqueue_deliveries(None, [delivery], NOW)
    [claimed] = await first.claim_deliveries(10, NOW, 10, CLAIM)
    assert await second.renew_delivery_leases([delivery.delivery_id], NOW + 20) == []
    assert await first.renew_delivery_leases([delivery.delivery_id], NOW + 20) == [
        delivery.delivery_id
    ]
    assert await second.claim_deliveries(10, NOW + 15, 10, CLAIM) == []

    result = models.AttemptResult(started_at=NOW + 16, duration_ms=5.0, status_code=500)
    outcome = base.AttemptOutcome(result, models.DeliveryStatus.PENDING, NOW + 17)
    await first.record_attempt(claimed, outcome)
    assert await first.renew_delivery_leases([delivery.delivery_id], NOW + 60) == []
    [again] = await second.claim_deliveries(10, NOW + 17, 10, CLAIM)
    assert again.delivery_id == delivery.delivery_id, "the retry is due at once, not leased"


async def test_renewing_nothing_is_free(new_store: NewStore) -> None:
    store = await opened(new_store)
    assert await store.renew_run_leases([], NOW) == []
    assert await store.renew_delivery_leases([], NOW) == []


async def test_a_restarted_sqlite_gateway_takes_back_at_once_what_the_dead_one_held(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    dead, restarted = (store_from_url(url) for _ in range(2))
    await dead.open()
    assert await dead.take_over(NOW) == 0
    run = await dead.create_run(new_run(lease_until=NOW + 600), NOW)
    delivery = new_delivery()
    await dead.enqueue_deliveries(None, [delivery], NOW)
    await dead.claim_deliveries(10, NOW, 600, CLAIM)
    await dead.close()  # its leases stay in the file, as after kill -9
    await restarted.open()
    try:
        assert await restarted.take_over(NOW + 1) == 2
        [taken] = await restarted.claim_runs(10, NOW + 1, 10)
        assert (taken.run_id, taken.attempt) == (run.run_id, 2)
        [resent] = await restarted.claim_deliveries(10, NOW + 1, 10, CLAIM)
        assert resent.delivery_id == delivery.delivery_id
        assert await restarted.take_over(NOW + 2) == 0, "its own leases are its own"
    finally:
        await restarted.close()


async def test_gateways_in_one_process_keep_each_others_leases(tmp_path: Path) -> None:
    """The file is locked per process: apps sharing a process (as tests run them) are alive."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    first, second = (store_from_url(url) for _ in range(2))
    await first.open()
    await second.open()
    try:
        await first.take_over(NOW)
        await first.create_run(new_run(lease_until=NOW + 600), NOW)
        assert await second.take_over(NOW + 1) == 0
        assert await second.claim_runs(10, NOW + 1, 10) == []
    finally:
        await first.close()
        await second.close()


async def test_a_second_process_cannot_serve_the_same_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; from gateway.store.sqlite import lock_database;"
        f" lock_database(Path({str(path)!r})); print('locked', flush=True); sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    store = store_from_url(f"sqlite:///{path}")
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"locked\n"
        await store.open()
        with pytest.raises(errors.StoreError) as refused:
            await store.take_over(NOW)
        assert refused.value.detail == (
            f"another gateway (pid {holder.pid}) is serving {path}: a SQLite database takes one"
            " process; stop that one first, or use PostgreSQL (database_url = postgresql://…)"
            " to run several"
        )
        holder.stdin.close()
        assert await asyncio.wait_for(holder.wait(), 20) == 0
        assert await store.take_over(NOW) == 0, "free once that process is gone"
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await store.close()


async def test_postgres_takes_nothing_over_at_start(postgres_url: str) -> None:
    """Processes share it: a dead one's leases lapse instead, and nothing is locked."""
    first, second = (store_from_url(postgres_url) for _ in range(2))
    await first.open()
    await second.open()
    try:
        await first.create_run(new_run(lease_until=NOW + 600), NOW)
        assert await first.take_over(NOW) == 0
        assert await second.take_over(NOW + 1) == 0
        assert await second.claim_runs(10, NOW + 1, 10) == []
    finally:
        await first.close()
        await second.close()
