"""``hookgate serve``: run the gateway, in one process or, with ``--workers N`` on PostgreSQL,
in N processes sharing the port; and the banner either way prints."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway import errors, inspect, keys, localsecrets, supervise
from gateway.app import create_app
from gateway.cli import options
from gateway.cli.errors import CommandFailed, handle_errors
from gateway.flows import Flow
from gateway.log import configure_logging
from gateway.settings import Settings
from gateway.store import backend_of


def add_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    options.add_config(serve)
    serve.add_argument("--host", help="address to bind (overrides GATEWAY_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free port (overrides GATEWAY_PORT)"
    )
    serve.add_argument("--database", help="database URL, e.g. sqlite:///var/gateway.db")
    serve.add_argument(
        "--workers",
        type=options.positive_int,
        default=1,
        help="gateway processes sharing the port, to use several cores (PostgreSQL only; "
        "default: 1)",
    )
    serve.add_argument("--worker-of", type=int, help=argparse.SUPPRESS)  # the supervisor's pid
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; 2 if the gateway cannot start."""
    return handle_errors(functools.partial(_serve_command, args), failure=2)


def _serve_command(args: argparse.Namespace) -> int:
    settings = options.settings_of(args)
    overrides = {"host": args.host, "port": args.port}
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
    return serve_app(app, settings.host, settings.port, worker_of=args.worker_of)


def serve_workers(args: argparse.Namespace, settings: Settings, app: web.Application) -> int:
    """``--workers N`` on PostgreSQL: migrate once, then run N ``hookgate serve`` children on
    one port."""
    asyncio.run(_prepare_workers(app))
    try:
        reserved = supervise.reserve_port(settings.host, settings.port)
    except OSError as exc:
        raise _cannot_listen(settings.host, settings.port, exc) from None
    command = [sys.executable, "-m", "gateway", "serve", "--worker-of", str(os.getpid())]
    command += ["--host", settings.host, "--port", str(reserved.getsockname()[1])]
    for option, value in (("--config", args.config), ("--database", args.database)):
        if value is not None:  # given here already; from the environment, children inherit it
            command += [option, value]

    def announce(base: str, pids: list[int]) -> str:
        reserved.close()  # every child listens: the port is theirs
        listed = ", ".join(map(str, pids))
        return banner(app, base, [f"  processes:        {len(pids)} (pids {listed})"])

    try:
        return asyncio.run(supervise.Supervisor(command, args.workers).run(announce))
    finally:
        reserved.close()


async def _prepare_workers(app: web.Application) -> None:
    """Create or migrate the schema once for every child, and choose the bin the banner names."""
    store = app[keys.store_key]
    await store.open()
    try:
        await inspect.choose_default_bin(app)
    finally:
        await store.close()


def serve_app(app: web.Application, host: str, port: int, *, worker_of: int | None = None) -> int:
    try:
        asyncio.run(_serve(app, host, port, worker_of))
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    return 0


def _cannot_listen(host: str, port: int, exc: OSError) -> CommandFailed:
    return CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=2)


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


def banner(app: web.Application, base: str, more: Sequence[str] = ()) -> str:
    """What ``hookgate serve`` prints once it listens, in one process or several (``more``)."""
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
            *more,
        ]
    )
