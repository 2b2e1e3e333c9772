"""The contract suite's fixtures: every test runs once per backend, on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import store_from_url
from tests import pg
from tests.integration.store_contract.common import BACKENDS, SECRET_KEY, FullStore, OpenStore


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh store of each backend: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    async with pg.fresh_schema() as url:
        yield url


@pytest.fixture
async def new_store(database_url: str) -> AsyncIterator[OpenStore]:
    """Opens stores on the test's database; closes them all at the end."""
    opened: list[FullStore] = []

    def make(secret_key: str = SECRET_KEY) -> FullStore:
        store: FullStore = store_from_url(database_url, secret_key)  # type: ignore[assignment]
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(new_store: OpenStore) -> FullStore:
    opened = new_store()
    await opened.open()
    return opened
