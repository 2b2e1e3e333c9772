"""The ``hookgate`` command: ``hookgate serve`` runs the gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping, Sequence

from aiohttp import web

from gateway import __version__, errors, keys
from gateway.app import create_app
from gateway.flows import Flow
from gateway.log import configure_logging
from gateway.settings import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hookgate", description=__doc__)
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
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.config)
        overrides = {"host": args.host, "port": args.port, "database_url": args.database}
        settings = settings.replace(**{k: v for k, v in overrides.items() if v is not None})
        configure_logging(settings.log_format, settings.log_level)
        app = create_app(settings)
    except errors.GatewayError as exc:
        print(f"hookgate: {exc.detail}", file=sys.stderr)
        return 2
    return serve_app(app, settings.host, settings.port)


def serve_app(app: web.Application, host: str, port: int) -> int:
    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        asyncio.run(_serve(app, host, port))
    return 0


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(banner(app, f"http://{bound_host}:{bound_port}"), flush=True)
        await asyncio.Event().wait()
    finally:
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
        ]
    )
