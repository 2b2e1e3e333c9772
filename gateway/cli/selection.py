"""What the operator commands share: which deliveries they select, refusing ids that name
nothing, and printing a line of output."""

from __future__ import annotations

import argparse

from gateway import models
from gateway.cli.errors import CommandFailed
from gateway.store import Store, base

STATUSES = tuple(status.value for status in models.DeliveryStatus)


def selected(args: argparse.Namespace, default: tuple[str, ...] = ()) -> base.DeliverySelection:
    return base.DeliverySelection(
        run_id=args.run_id,
        endpoint_id=args.endpoint_id,
        statuses=tuple(models.DeliveryStatus(s) for s in dict.fromkeys(args.status or default)),
        since=args.since,
        until=args.until,
    )


async def known(store: Store, args: argparse.Namespace) -> None:
    """Refuse an endpoint or run id that names nothing."""
    if args.endpoint_id is not None and await store.get_endpoint(args.endpoint_id) is None:
        raise CommandFailed(f"unknown endpoint {args.endpoint_id}")
    if args.run_id is not None and await store.get_run(args.run_id) is None:
        raise CommandFailed(f"unknown run {args.run_id}")


def emit(line: str) -> None:
    print(line, flush=True)
