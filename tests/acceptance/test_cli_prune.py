"""``hookgate prune``: what retention would delete, or deletes, on the configured store."""

from __future__ import annotations

import json
import time
from typing import cast

from gateway.store import store_from_url
from gateway.store.retention import DAY, KINDS
from tests.acceptance.test_cli_deliveries import hookgate
from tests.database import tables
from tests.integration.store_contract.common import FullStore
from tests.integration.store_contract.test_retention import finished

TABLES = ("triggers", "runs", "events", "deliveries", "attempts")


async def seed(database_url: str) -> None:
    """Three runs finished and delivered 40 days ago (expired at the default 30 days), and one
    whose delivery is still pending."""
    store = cast(FullStore, store_from_url(database_url))
    await store.open()
    try:
        long_ago = time.time() - 40 * DAY
        for _ in range(3):
            await finished(store, long_ago, sent=True)
        await finished(store, long_ago, sent=False)
    finally:
        await store.close()


async def test_a_dry_run_prints_counts_and_changes_nothing(gateway_database_url: str) -> None:
    await seed(gateway_database_url)
    before = await tables(gateway_database_url, TABLES)

    shown = await hookgate(gateway_database_url, "prune", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    counts = dict(line.split() for line in shown.stdout.splitlines()[:-1])
    assert counts == {
        "deliveries": "3",
        "attempts": "3",
        "events": "4",
        "runs": "3",
        "triggers": "3",
        "rejected_triggers": "0",
        "captures": "0",
        "threads": "0",
    }
    assert "dry run" in shown.stdout.splitlines()[-1]
    as_json = await hookgate(gateway_database_url, "prune", "--dry-run", "--json")
    assert json.loads(as_json.stdout) == {
        "dry_run": True,
        **{kind: int(counts[kind]) for kind in KINDS},
    }
    assert await tables(gateway_database_url, TABLES) == before, "a dry run deletes nothing"

    pruned = await hookgate(gateway_database_url, "prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {"dry_run": False, **{k: int(counts[k]) for k in KINDS}}
    left = await tables(gateway_database_url, TABLES)
    assert {name: len(rows) for name, rows in left.items()} == {
        "triggers": 1,
        "runs": 1,
        "events": 0,
        "deliveries": 1,
        "attempts": 0,
    }, "the run whose delivery is pending stays, with its trigger"
