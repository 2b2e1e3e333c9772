"""The operator commands (``deliveries``, ``replay``, ``endpoints``, ``prune``): their arguments, and the
store they work on, the configured one, whether or not a gateway is running. SQLite in WAL mode
lets a second process read and write, and a running gateway's dispatcher sends replayed
deliveries on its next poll."""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import errors
from gateway.cli import options, prune, render, replay
from gateway.cli.errors import CommandFailed, handle_errors
from gateway.cli.selection import STATUSES
from gateway.log import configure_logging
from gateway.settings import Settings
from gateway.store import Store, store_from_url

Action = Callable[[Store, Settings, argparse.Namespace], Awaitable[int]]


def add_commands(commands: Any) -> None:
    on_store = argparse.ArgumentParser(add_help=False)
    options.add_config(on_store, database=True)
    on_store.set_defaults(run=operate)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON (one object a line)")

    deliveries = commands.add_parser(
        "deliveries",
        help="inspect deliveries in the store",
        description="Inspect deliveries in the configured store (works with or without a "
        "running gateway).",
    )
    verbs = deliveries.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser(
        "list", parents=[on_store, as_json], help="list deliveries, newest first"
    )
    _selection_options(listing, status_help="only deliveries in this status (repeatable)")
    listing.add_argument(
        "--limit", type=options.positive_int, default=100, help="at most N (default: 100)"
    )
    listing.set_defaults(action=render.list_deliveries, parser=listing)
    show = verbs.add_parser(
        "show", parents=[on_store, as_json], help="one delivery with every attempt"
    )
    show.add_argument("delivery_id")
    show.set_defaults(action=render.show_delivery, parser=show)

    replaying = commands.add_parser(
        "replay",
        parents=[on_store],
        help="send deliveries again, each with its original webhook-id",
        description="Make one delivery, or an endpoint's (or a run's) deliveries, due now. A "
        "running gateway sends them on its next poll; --wait follows them until none is pending.",
    )
    replaying.add_argument("delivery_id", nargs="?", help="one delivery to send again")
    _selection_options(
        replaying, status_help="replay deliveries in this status (repeatable, default: failed)"
    )
    replaying.add_argument(
        "--wait", action="store_true", help="follow the replayed deliveries until none is pending"
    )
    replaying.add_argument(
        "--timeout",
        type=options.duration,
        default=60.0,
        help="how long --wait waits, e.g. 60, 90s, 5m (default: 60 s)",
    )
    replaying.set_defaults(action=replay.replay_deliveries, parser=replaying)

    endpoints = commands.add_parser(
        "endpoints",
        help="inspect registered endpoints",
        description="Inspect registered endpoints (secrets are always masked).",
    )
    endpoint_verbs = endpoints.add_subparsers(dest="verb", required=True)
    endpoint_list = endpoint_verbs.add_parser(
        "list", parents=[on_store, as_json], help="every endpoint, its state and filters"
    )
    endpoint_list.set_defaults(action=render.list_endpoints, parser=endpoint_list)
    prune.add_command(commands, on_store, as_json)


def _selection_options(parser: argparse.ArgumentParser, *, status_help: str) -> None:
    parser.add_argument(
        "--status",
        action="append",
        choices=STATUSES,
        metavar="STATUS",
        help=f"{status_help}; one of {', '.join(STATUSES)}",
    )
    parser.add_argument(
        "--endpoint", dest="endpoint_id", metavar="ENDPOINT_ID", help="deliveries to this endpoint"
    )
    parser.add_argument("--run", dest="run_id", metavar="RUN_ID", help="deliveries of this run")
    parser.add_argument(
        "--since", type=options.moment, help="created at or after (RFC 3339 or epoch seconds)"
    )
    parser.add_argument(
        "--until", type=options.moment, help="created before (RFC 3339 or epoch seconds)"
    )


def _check_arguments(args: argparse.Namespace) -> None:
    """Refusals argparse cannot express; they exit with its code 2 and usage line."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    parser: argparse.ArgumentParser = args.parser
    if since is not None and until is not None and until <= since:
        parser.error("--until must be after --since")
    if args.command != "replay":
        return
    bulk = args.endpoint_id is not None or args.run_id is not None
    filtered = args.status or since is not None or until is not None
    if args.delivery_id is not None and (bulk or filtered):
        parser.error("give either a delivery id or --endpoint/--run with filters, not both")
    if args.delivery_id is None and not bulk:
        parser.error("give a delivery id, or --endpoint ENDPOINT_ID (or --run RUN_ID)")


def operate(args: argparse.Namespace) -> int:
    """Run an operator command on the configured store: 0, 1 (failed) or 2 (bad configuration)."""
    _check_arguments(args)
    return handle_errors(functools.partial(_operate, args))


def _operate(args: argparse.Namespace) -> int:
    settings = options.settings_of(args)
    store = store_from_url(settings.database_url, settings.secret_key, must_exist=True)
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show "…" gets "\u2026"
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # Only problems on stderr: the store's info lines would drown the output.
    configure_logging(settings.log_format, "warning")
    return asyncio.run(_on_store(store, settings, args))


async def _on_store(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    action: Action = args.action
    try:
        await store.open()
    except errors.StoreError as exc:
        raise CommandFailed(f"{exc.detail} (see --database)") from None
    try:
        return await action(store, settings, args)
    finally:
        await store.close()
