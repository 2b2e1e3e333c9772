"""``hookgate prune``: delete what the retention settings say has expired, as a running
gateway's pruner does, or (``--dry-run``) only count it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.selection import emit
from gateway.clock import SystemClock
from gateway.pruner import Pruner
from gateway.settings import Settings
from gateway.store import Store


def add_command(commands: Any, *parents: argparse.ArgumentParser) -> None:
    """``parents``: the operator commands' store and ``--json`` options."""
    prune = commands.add_parser(
        "prune",
        parents=list(parents),
        help="delete what retention says has expired (--dry-run: only show it)",
        description="Delete, in batches, what the retention settings (retention_days, "
        "rejected_retention_days, event_retention_days, bin_keep_captures) say has expired, "
        "as a running gateway does every prune_interval. Pending deliveries, runs not finished "
        "and the runs of existing threads are never pruned.",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="count what would go, and delete nothing"
    )
    prune.set_defaults(action=prune_store, parser=prune)


async def prune_store(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    pruner = Pruner.for_settings(settings, store, SystemClock())
    counts = (await (pruner.preview() if args.dry_run else pruner.prune())).counts()
    if args.json:
        emit(json.dumps({"dry_run": args.dry_run, **counts}))
        return 0
    for kind, count in counts.items():
        emit(f"{kind:<18} {count}")
    total = sum(counts.values())
    emit(
        f"{total} rows would go (dry run: nothing deleted)"
        if args.dry_run
        else f"{total} rows pruned"
    )
    return 0
