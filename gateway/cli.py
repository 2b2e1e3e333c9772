"""The ``hookgate`` command: ``hookgate serve`` runs the gateway; ``hookgate token`` signs a trigger URL.

The operator commands (``deliveries``, ``replay``, ``endpoints``, ``prune``) work on the configured store
directly, whether or not a gateway is running: SQLite in WAL mode lets a second process read
and write, and a running gateway's dispatcher sends replayed deliveries on its next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import math
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway import (
    __version__,
    console,
    errors,
    inspect,
    keys,
    listen,
    localsecrets,
    log,
    models,
    signing,
    supervise,
    verify,
)
from gateway.api.endpoints import attempt_view, delivery_view, endpoint_view
from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.flows import Flow
from gateway.log import configure_logging
from gateway.pruner import Pruner
from gateway.settings import Settings, load_settings
from gateway.store import Store, backend_of, base, store_from_url
from gateway.store.sqlite import path_from_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hookgate",
        description="hookgate: durable webhook triggers in, signed and retried run callbacks out.",
    )
    parser.add_argument("--version", action="version", version=f"hookgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )
    serve.add_argument("--host", help="address to bind (overrides GATEWAY_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free port (overrides GATEWAY_PORT)"
    )
    serve.add_argument("--database", help="database URL, e.g. sqlite:///var/gateway.db")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="gateway processes sharing the port, to use several cores (PostgreSQL only; "
        "default: 1)",
    )
    serve.add_argument("--worker-of", type=int, help=argparse.SUPPRESS)  # the supervisor's pid
    token = commands.add_parser(
        "token",
        help="print a signed trigger URL for a flow",
        description="Print a webhook URL carrying a signed, expiring ?token= for one flow. When "
        "GATEWAY_API_KEY is set, the token stands in for the API key on that flow's webhook only.",
    )
    token.add_argument("flow_id", help="the flow the URL triggers")
    token.add_argument(
        "--expires",
        default="30d",
        type=_duration,
        help="lifetime such as 30d, 12h, 90m, 3600s or 3600 (default: 30d)",
    )
    token.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )
    token.add_argument(
        "--base-url",
        help="public base URL to print instead of http://<host>:<port>, e.g. https://hooks.example.com",
    )
    _operator_commands(commands)
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database schema, then exit",
        description="Apply the schema migrations the database lacks, and nothing else "
        "(hookgate serve applies them too). Safe while gateways run on a PostgreSQL database.",
    )
    migrate.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )
    migrate.add_argument("--database", help="database URL, e.g. postgresql://user@host:5432/db")
    _secret_command(commands)
    listen.add_command(commands)
    args = parser.parse_args(argv)
    if args.command in OPERATOR_COMMANDS:
        return operate(args)
    if args.command == "migrate":
        return run_migrations(args.config, args.database)
    if args.command == "token":
        return print_token(args.config, args.flow_id, args.expires, args.base_url)
    if args.command == "secret":
        return print_callback_secret(args.config, args.url)
    if args.command == "listen":
        return listen.main(args)

    try:
        settings = load_settings(args.config)
        overrides = {"host": args.host, "port": args.port, "database_url": args.database}
        settings = settings.replace(**{k: v for k, v in overrides.items() if v is not None})
        if args.workers > 1 and backend_of(settings.database_url) == "sqlite":
            raise errors.ConfigError(
                f"--workers {args.workers} needs PostgreSQL: a SQLite database takes one process."
                " Set GATEWAY_DATABASE_URL=postgresql://user@host:5432/db (or --database) to run"
                " several"
            )
        configure_logging(settings.log_format, settings.log_level)
        localsecrets.check_development_secrets(settings)
        app = create_app(settings)
        if args.workers > 1:
            return serve_workers(args, settings, app)
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    return serve_app(app, settings.host, settings.port, worker_of=args.worker_of)


def serve_workers(args: argparse.Namespace, settings: Settings, app: web.Application) -> int:
    """``--workers N`` on PostgreSQL: migrate once, then run N ``hookgate serve`` children on
    one port."""
    asyncio.run(store_from_url(settings.database_url, settings.secret_key).migrate())
    try:
        reserved = supervise.reserve_port(settings.host, settings.port)
    except OSError as exc:
        print(
            f"hookgate: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, "-m", "gateway", "serve", "--worker-of", str(os.getpid())]
    command += ["--host", settings.host, "--port", str(reserved.getsockname()[1])]
    for option, value in (("--config", args.config), ("--database", args.database)):
        if value is not None:  # given here already; from the environment, children inherit it
            command += [option, value]

    def announce(base: str, pids: list[int]) -> str:
        reserved.close()  # every child listens: the port is theirs
        listed = ", ".join(map(str, pids))
        return banner(app, base) + f"\n  processes:        {len(pids)} (pids {listed})"

    try:
        return asyncio.run(supervise.Supervisor(command, args.workers).run(announce))
    finally:
        reserved.close()


def run_migrations(config: str | None, database: str | None) -> int:
    try:
        settings = load_settings(config)
        if database is not None:
            settings = settings.replace(database_url=database)
        configure_logging(settings.log_format, "warning")
        applied = asyncio.run(store_from_url(settings.database_url, settings.secret_key).migrate())
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2 if isinstance(exc, errors.ConfigError) else 1
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}")
    else:
        print("the schema is up to date")
    return 0


def print_token(config: str | None, flow_id: str, lifetime: float, base_url: str | None) -> int:
    try:
        settings = load_settings(config)
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    if flow_id not in settings.flows:
        known = ", ".join(settings.flows) or "none configured"
        print(f"hookgate: unknown flow {flow_id!r} (flows: {known})", file=sys.stderr)
        return 2
    if not settings.signing_secret:
        print("hookgate: set signing_secret (GATEWAY_SIGNING_SECRET) to sign URLs", file=sys.stderr)
        return 2
    token = verify.trigger_token(settings.signing_secret, flow_id, time.time() + lifetime)
    base = (base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    print(f"{base}/api/v1/webhook/{quote(flow_id, safe='')}?token={token}")
    return 0


def _secret_command(commands: Any) -> None:
    secret = commands.add_parser(
        "secret",
        help="print the secret a per-run webhook receiver verifies its callbacks with",
        description="Print the whsec_ secret that signs per-run callbacks (a run's webhook URL) "
        "to this URL's origin, for the receiver to verify them with any Standard Webhooks "
        "library and to check hookgate_token.",
    )
    secret.add_argument("url", help="the receiver's URL, as given in webhook=")
    secret.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )


def print_callback_secret(config: str | None, url: str) -> int:
    try:
        settings = load_settings(config)
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    if not settings.signing_secret:
        print("hookgate: set signing_secret (GATEWAY_SIGNING_SECRET) first", file=sys.stderr)
        return 2
    try:
        origin = signing.callback_origin(url)
    except ValueError as exc:
        print(f"hookgate: url: {exc}", file=sys.stderr)
        return 2
    print(f"hookgate: the secret of per-run callbacks to {origin}", file=sys.stderr)
    print(signing.callback_secret(settings.signing_secret, origin))
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``3600s`` or plain seconds, as a positive number of seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30d, 12h, 90m or 3600s, got {text!r}"
        ) from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return seconds


def serve_app(app: web.Application, host: str, port: int, *, worker_of: int | None = None) -> int:
    try:
        asyncio.run(_serve(app, host, port, worker_of))
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hookgate: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(app: web.Application, host: str, port: int, worker_of: int | None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down in order: stop listening, let the runs and
    deliveries in flight be recorded, close the store. (aiohttp's own signal handling cancels
    every task at once, the store's writer among them, and loses those records.)

    ``worker_of``: the pid of the ``--workers`` supervisor this process is a child of; it then
    shares the port with its siblings, and stops when the supervisor is gone."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watch = None
    if worker_of is not None:
        watch = asyncio.create_task(supervise.watch_parent(worker_of, stop))
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # aiohttp has no header-read deadline of its own; its keep-alive timer is one: it closes
        # a connection that has not sent a whole request's headers within this time of connecting
        # or of the previous response. The body's deadline is gateway.api.deadlines'.
        keepalive_timeout=app[keys.settings_key].header_read_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=worker_of is not None)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        base = f"http://{bound_host}:{bound_port}"
        print(supervise.ready_line(base) if worker_of else banner(app, base), flush=True)
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await runner.cleanup()


def banner(app: web.Application, base: str) -> str:
    flows: Mapping[str, Flow] = app[keys.flows_key]
    flow_ids = ", ".join(flows) or "none configured"
    return "\n".join(
        [
            f"hookgate listening on {base}",
            f'  trigger a flow:   curl -X POST {base}/api/v1/webhook/<flow_id> -d \'{{"hello": "world"}}\'',
            f"  flows:            {flow_ids}",
            f"  follow a run:     {base}/api/v1/runs/<run_id>",
            f"  endpoints:        {base}/api/v1/endpoints",
            f"  deliveries:       {base}/api/v1/deliveries",
            f"  health:           {base}/healthz",
            *inspect.banner_lines(app, base),
        ]
    )


# Operator commands: deliveries list/show, replay, endpoints list, straight on the store.

OPERATOR_COMMANDS = frozenset({"deliveries", "replay", "endpoints", "prune"})
STATUSES = tuple(status.value for status in models.DeliveryStatus)
TRACK_LIMIT = 1_000_000  # deliveries one ``replay --wait`` follows
WATCH_INTERVAL = 0.25  # seconds between two looks at the replayed deliveries
QUIET_HINT_AFTER = 5.0  # seconds without any progress before hinting that no gateway may be running

Action = Callable[[Store, Settings, argparse.Namespace], Awaitable[int]]


class CommandFailed(Exception):
    """An operator command could not do what was asked: one line on stderr, exit code 1."""


def _operator_commands(commands: Any) -> None:
    on_store = argparse.ArgumentParser(add_help=False)
    on_store.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )
    on_store.add_argument("--database", help="database URL, e.g. sqlite:///var/gateway.db")
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
        "--limit", type=_positive_int, default=100, help="at most N (default: 100)"
    )
    listing.set_defaults(action=list_deliveries, parser=listing)
    show = verbs.add_parser(
        "show", parents=[on_store, as_json], help="one delivery with every attempt"
    )
    show.add_argument("delivery_id")
    show.set_defaults(action=show_delivery, parser=show)

    replay = commands.add_parser(
        "replay",
        parents=[on_store],
        help="send deliveries again, each with its original webhook-id",
        description="Make one delivery, or an endpoint's (or a run's) deliveries, due now. A "
        "running gateway sends them on its next poll; --wait follows them until none is pending.",
    )
    replay.add_argument("delivery_id", nargs="?", help="one delivery to send again")
    _selection_options(
        replay, status_help="replay deliveries in this status (repeatable, default: failed)"
    )
    replay.add_argument(
        "--wait", action="store_true", help="follow the replayed deliveries until none is pending"
    )
    replay.add_argument(
        "--timeout",
        type=_duration,
        default=60.0,
        help="how long --wait waits, e.g. 60, 90s, 5m (default: 60 s)",
    )
    replay.set_defaults(action=replay_deliveries, parser=replay)

    endpoints = commands.add_parser(
        "endpoints",
        help="inspect registered endpoints",
        description="Inspect registered endpoints (secrets are always masked).",
    )
    endpoint_verbs = endpoints.add_subparsers(dest="verb", required=True)
    endpoint_list = endpoint_verbs.add_parser(
        "list", parents=[on_store, as_json], help="every endpoint, its state and filters"
    )
    endpoint_list.set_defaults(action=list_endpoints, parser=endpoint_list)

    prune = commands.add_parser(
        "prune",
        parents=[on_store, as_json],
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
        "--since", type=_moment, help="created at or after (RFC 3339 or epoch seconds)"
    )
    parser.add_argument("--until", type=_moment, help="created before (RFC 3339 or epoch seconds)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {text!r}")
    return value


def _moment(text: str) -> float:
    """An RFC 3339 date-time (UTC when it names no offset) or epoch seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an RFC 3339 date-time or epoch seconds, got {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"expected a finite time, got {text!r}")
    return seconds


def _selection(args: argparse.Namespace, default: tuple[str, ...] = ()) -> base.DeliverySelection:
    return base.DeliverySelection(
        run_id=args.run_id,
        endpoint_id=args.endpoint_id,
        statuses=tuple(models.DeliveryStatus(s) for s in dict.fromkeys(args.status or default)),
        since=args.since,
        until=args.until,
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
    try:
        settings = load_settings(args.config)
        if args.database is not None:
            settings = settings.replace(database_url=args.database)
        store = store_from_url(settings.database_url, settings.secret_key)
        sqlite = backend_of(settings.database_url) == "sqlite"
        path = path_from_url(settings.database_url) if sqlite else None
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show "…" gets "\u2026"
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # Only problems on stderr: the store's info lines would drown the output.
    configure_logging(settings.log_format, "warning")
    if path is not None and not path.is_file():
        print(f"hookgate: no database at {path} (see --database)", file=sys.stderr)
        return 1
    if path is not None and not _looks_like_sqlite(path):
        print(f"hookgate: {path} is not a SQLite database (see --database)", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_on_store(store, settings, args))
    except CommandFailed as exc:
        print(f"hookgate: {exc}", file=sys.stderr)
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and let nothing flush into the pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (sqlite3.Error, OSError) as exc:
        print(f"hookgate: database {path}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("hookgate: interrupted", file=sys.stderr)
        return 130
    return 1


def _looks_like_sqlite(path: Path) -> bool:
    """An empty file or one with SQLite's header: anything else would fail half-way through opening."""
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
    except OSError:
        return False
    return header in (b"", b"SQLite format 3\x00")


async def _on_store(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    action: Action = args.action
    await store.open()
    try:
        return await action(store, settings, args)
    finally:
        await store.close()


async def _known(store: Store, args: argparse.Namespace) -> None:
    """Refuse an endpoint or run id that names nothing."""
    if args.endpoint_id is not None and await store.get_endpoint(args.endpoint_id) is None:
        raise CommandFailed(f"unknown endpoint {args.endpoint_id}")
    if args.run_id is not None and await store.get_run(args.run_id) is None:
        raise CommandFailed(f"unknown run {args.run_id}")


def _emit(line: str) -> None:
    print(line, flush=True)


async def list_deliveries(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    deliveries = await store.list_deliveries(_selection(args), limit=args.limit)
    if not deliveries:
        # A filter on an id that names nothing is likely a typo; deliveries of a deleted
        # endpoint are still listed, since they are found.
        await _known(store, args)
    if args.json:
        for delivery in deliveries:
            _emit(json.dumps(delivery_view(delivery)))
        return 0
    if not deliveries:
        _emit("no deliveries")
        return 0
    header = ("ID", "STATUS", "ATTEMPTS", "LAST", "EVENT", "URL", "CREATED")
    _emit(
        console.table(
            header,
            (
                (
                    d.delivery_id,
                    d.status.value,
                    str(d.attempts),
                    _last_outcome(d),
                    d.event_type,
                    console.clip(d.url, 60),
                    console.when(d.created_at),
                )
                for d in deliveries
            ),
        )
    )
    return 0


def _last_outcome(delivery: models.Delivery) -> str:
    if delivery.last_status_code is not None:
        return str(delivery.last_status_code)
    return console.clip(delivery.last_error, 40)


async def show_delivery(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    delivery = await store.get_delivery(args.delivery_id)
    if delivery is None:
        raise CommandFailed(f"unknown delivery {args.delivery_id}")
    attempts = await store.list_attempts(delivery.delivery_id)
    if args.json:
        view = delivery_view(delivery)
        view["payload"] = _payload(delivery.payload)
        view["attempt_log"] = [attempt_view(attempt) for attempt in attempts]
        _emit(json.dumps(view))
        return 0
    facts = [
        ("delivery", delivery.delivery_id),
        ("status", delivery.status.value),
        ("attempts", str(delivery.attempts)),
        ("event", delivery.event_type),
        ("run", delivery.run_id or console.EMPTY),
        ("endpoint", delivery.endpoint_id or console.EMPTY),
        ("url", delivery.url),
        ("created", console.when(delivery.created_at)),
        ("updated", console.when(delivery.updated_at)),
    ]
    if delivery.status is models.DeliveryStatus.PENDING:
        facts.append(("next try", console.when(delivery.next_attempt_at)))
    _emit(console.fields(facts))
    _emit("")
    if not attempts:
        _emit("no attempts yet")
        return 0
    header = ("#", "STARTED", "DURATION", "STATUS", "ERROR", "RESPONSE")
    rows = (
        (
            str(attempt.attempt),
            console.when(attempt.result.started_at, millis=True),
            f"{attempt.result.duration_ms:.1f} ms",
            console.EMPTY
            if attempt.result.status_code is None
            else str(attempt.result.status_code),
            console.clip(attempt.result.error, 60),
            console.snippet(attempt.result.response_body) if attempt.result.response_body else "-",
        )
        for attempt in attempts
    )
    _emit(console.table(header, rows))
    return 0


def _payload(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")


@dataclasses.dataclass(frozen=True)
class _Replayed:
    count: int
    tracked: Mapping[str, int]  # delivery id → attempts when replayed (only with --wait)
    scope: base.DeliverySelection  # a selection that holds every tracked delivery
    endpoint_ids: frozenset[str]  # where they go, to warn about endpoints that hold them


async def replay_deliveries(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    now = time.time()
    if args.delivery_id is not None:
        replayed = await _replay_one(store, args.delivery_id, now)
    else:
        replayed = await _replay_selection(store, args, now)
    if replayed.count == 0:
        return 0
    held = await _held_endpoints(store, replayed.endpoint_ids, time.time())
    for note in held:
        _emit(f"note: {note}")
    if not args.wait:
        them = "it" if replayed.count == 1 else "them"
        _emit(
            f"a running gateway sends {them} on its next poll (within "
            f"{settings.poll_interval:g} s); see hookgate deliveries list"
        )
        return 0
    return await _follow(store, replayed, args.timeout, hint=not held)


async def _replay_one(store: Store, delivery_id: str, now: float) -> _Replayed:
    delivery = await store.retry_delivery(delivery_id, now)
    if delivery is None:
        raise CommandFailed(f"unknown delivery {delivery_id}")
    _emit(f"delivery {delivery.delivery_id} is due now (attempts so far: {delivery.attempts})")
    return _Replayed(
        count=1,
        tracked={delivery.delivery_id: delivery.attempts},
        scope=base.DeliverySelection(run_id=delivery.run_id, endpoint_id=delivery.endpoint_id),
        endpoint_ids=frozenset(i for i in [delivery.endpoint_id] if i is not None),
    )


async def _replay_selection(store: Store, args: argparse.Namespace, now: float) -> _Replayed:
    await _known(store, args)
    selection = _selection(args, default=(models.DeliveryStatus.FAILED.value,))
    chosen: list[models.Delivery] = []
    if args.wait:  # which ones, to follow them once replayed
        chosen = await store.list_deliveries(selection, limit=TRACK_LIMIT)
    count = await store.replay_deliveries(selection, now)
    _emit(f"replayed {count} {_plural(count)} ({_describe(selection)})")
    endpoint_ids = {selection.endpoint_id, *(d.endpoint_id for d in chosen)}
    return _Replayed(
        count=count,
        tracked={d.delivery_id: d.attempts for d in chosen},
        scope=dataclasses.replace(selection, statuses=()),
        endpoint_ids=frozenset(i for i in endpoint_ids if i is not None),
    )


async def _held_endpoints(store: Store, endpoint_ids: frozenset[str], now: float) -> list[str]:
    """Why a gateway would not send to these endpoints now, one sentence each."""
    notes = []
    for endpoint_id in sorted(endpoint_ids):
        endpoint = await store.get_endpoint(endpoint_id)
        if endpoint is None:
            notes.append(f"endpoint {endpoint_id} no longer exists: its deliveries fail")
            continue
        state = endpoint.state(now)
        if state == "circuit_open":
            notes.append(
                f"endpoint {endpoint_id} has its circuit open after "
                f"{endpoint.consecutive_failures} failures: the gateway sends one probe at "
                f"{console.when(endpoint.circuit_open_until)}, the rest once one succeeds"
            )
        elif state != "active":
            reason = f" ({endpoint.disabled_reason})" if endpoint.disabled_reason else ""
            notes.append(
                f"endpoint {endpoint_id} is {state}{reason}: its deliveries wait until it is "
                f"resumed (POST /api/v1/endpoints/{endpoint_id}/resume)"
            )
    return [console.printable(note) for note in notes]


def _plural(count: int) -> str:
    return "delivery" if count == 1 else "deliveries"


def _describe(selection: base.DeliverySelection) -> str:
    parts = [f"status {'|'.join(s.value for s in selection.statuses)}"]
    if selection.endpoint_id is not None:
        parts.insert(0, f"endpoint {selection.endpoint_id}")
    if selection.run_id is not None:
        parts.insert(0, f"run {selection.run_id}")
    if selection.since is not None:
        parts.append(f"since {console.when(selection.since)}")
    if selection.until is not None:
        parts.append(f"until {console.when(selection.until)}")
    return ", ".join(parts)


@dataclasses.dataclass
class _Progress:
    """Where the replayed deliveries stand: settled ones by outcome, pending ones by id."""

    tracked: Mapping[str, int]  # delivery id → attempts when replayed
    settled: dict[str, models.DeliveryStatus | None] = dataclasses.field(default_factory=dict)
    retrying: int = 0

    @property
    def pending(self) -> int:
        return len(self.tracked) - len(self.settled)

    @property
    def delivered(self) -> int:
        return sum(status is models.DeliveryStatus.SUCCEEDED for status in self.settled.values())

    @property
    def failed(self) -> int:
        return len(self.settled) - self.delivered

    def line(self) -> str:
        text = f"{self.delivered}/{len(self.tracked)} delivered, {self.failed} failed"
        if self.pending:
            text += f", {self.pending} pending"
            if self.retrying:
                text += f" ({self.retrying} retrying on their schedule)"
        return text


async def _follow(store: Store, replayed: _Replayed, timeout: float, *, hint: bool) -> int:
    """Print progress until none of the replayed deliveries is pending, or ``timeout`` passes."""
    _emit(f"waiting up to {timeout:g} s for a running gateway to send them")
    tracked = replayed.tracked
    progress = _Progress(tracked)
    pending_scope = dataclasses.replace(replayed.scope, statuses=(models.DeliveryStatus.PENDING,))
    started = time.monotonic()
    shown, hinted = "", not hint
    while True:
        waiting = {
            d.delivery_id: d.attempts
            for d in await store.list_deliveries(pending_scope, limit=TRACK_LIMIT)
            if d.delivery_id in tracked
        }
        for delivery_id in tracked.keys() - waiting.keys() - progress.settled.keys():
            delivery = await store.get_delivery(delivery_id)
            progress.settled[delivery_id] = None if delivery is None else delivery.status
        progress.retrying = sum(waiting[i] > tracked[i] for i in waiting)
        line = progress.line()
        if line != shown:
            _emit(line)
            shown = line
        if not progress.pending:
            break
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            raise CommandFailed(
                f"timed out after {timeout:g} s with {progress.pending} still pending: they stay "
                "due, and a running gateway sends them (is one running on this database?)"
            )
        if not hinted and elapsed >= QUIET_HINT_AFTER and not progress.settled:
            _emit("nothing sent yet: is a gateway running on this database?")
            hinted = True
        await asyncio.sleep(WATCH_INTERVAL)
    if progress.failed:
        raise CommandFailed(
            f"{progress.failed} of {len(tracked)} not delivered; "
            "see hookgate deliveries list --status failed"
        )
    return 0


async def list_endpoints(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    endpoints = await store.list_endpoints()
    now = time.time()
    if args.json:
        for endpoint in endpoints:
            _emit(json.dumps(endpoint_view(endpoint, now)))  # the secret is masked
        return 0
    if not endpoints:
        _emit("no endpoints")
        return 0
    header = ("ID", "URL", "STATE", "FILTERS", "FAILURES", "SECRET")
    rows = (
        (
            e.endpoint_id,
            console.clip(e.url or "(pull: hookgate listen)", 60),
            _state(e, now),
            _filters(e),
            str(e.consecutive_failures),
            log.mask(e.secret),
        )
        for e in endpoints
    )
    _emit(console.table(header, rows))
    return 0


async def prune_store(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    pruner = Pruner.for_settings(settings, store, SystemClock())
    counts = (await (pruner.preview() if args.dry_run else pruner.prune())).counts()
    if args.json:
        _emit(json.dumps({"dry_run": args.dry_run, **counts}))
        return 0
    for kind, count in counts.items():
        _emit(f"{kind:<18} {count}")
    total = sum(counts.values())
    _emit(
        f"{total} rows would go (dry run: nothing deleted)"
        if args.dry_run
        else f"{total} rows pruned"
    )
    return 0


def _state(endpoint: models.Endpoint, now: float) -> str:
    state = endpoint.state(now)
    if endpoint.disabled_reason:
        state += f" ({console.clip(endpoint.disabled_reason, 40)})"
    return state


def _filters(endpoint: models.Endpoint) -> str:
    parts = []
    if endpoint.flow_ids:
        parts.append("flows=" + ",".join(endpoint.flow_ids))
    if endpoint.event_types:
        parts.append("events=" + ",".join(endpoint.event_types))
    if endpoint.filter:
        parts.append("filter=" + console.clip(endpoint.filter, 40))
    return " ".join(parts) or "all"
