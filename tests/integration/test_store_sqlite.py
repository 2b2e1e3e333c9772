"""What only the SQLite store promises: group commit. The rest is the contract suite's
(tests/integration/store_contract/), which runs on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.sqlite import SQLiteStore
from tests.integration.store_contract.common import NOW, new_run, trigger


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    sqlite_store = SQLiteStore(tmp_path / "store.db")
    await sqlite_store.open()
    yield sqlite_store
    await sqlite_store.close()


async def test_many_small_writes_share_commits(store: SQLiteStore) -> None:
    before = store.writer.batches
    await asyncio.gather(
        *(store.create_trigger_and_run(trigger(), new_run(), NOW) for _ in range(200))
    )
    assert store.writer.batches - before < 200 / 4, "group commit batches concurrent writes"
    assert len(await store.claim_runs(500, NOW, 30)) == 200
