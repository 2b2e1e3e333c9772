"""The ``hookgate`` command: ``hookgate serve`` runs the gateway; ``hookgate token`` signs a trigger URL."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from aiohttp import web

from gateway import __version__, errors, keys, verify
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
    args = parser.parse_args(argv)
    if args.command == "token":
        return print_token(args.config, args.flow_id, args.expires, args.base_url)

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
