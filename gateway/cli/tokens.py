"""``hookgate token`` (a signed trigger URL for a flow) and ``hookgate secret`` (the secret a
per-run webhook receiver verifies its callbacks with): both sign with ``signing_secret``."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any
from urllib.parse import quote

from gateway import signing, verify
from gateway.cli import options
from gateway.cli.errors import CommandFailed, handle_errors
from gateway.settings import Settings


def add_commands(commands: Any) -> None:
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
        type=options.duration,
        help="lifetime such as 30d, 12h, 90m, 3600s or 3600 (default: 30d)",
    )
    options.add_config(token)
    token.add_argument(
        "--base-url",
        help="public base URL to print instead of http://<host>:<port>, e.g. https://hooks.example.com",
    )
    token.set_defaults(run=functools.partial(_run, print_token))

    secret = commands.add_parser(
        "secret",
        help="print the secret a per-run webhook receiver verifies its callbacks with",
        description="Print the whsec_ secret that signs per-run callbacks (a run's webhook URL) "
        "to this URL's origin, for the receiver to verify them with any Standard Webhooks "
        "library and to check hookgate_token.",
    )
    secret.add_argument("url", help="the receiver's URL, as given in webhook=")
    options.add_config(secret)
    secret.set_defaults(run=functools.partial(_run, print_callback_secret))


def _run(command: Any, args: argparse.Namespace) -> int:
    return handle_errors(lambda: command(args), failure=2)


def _signing_secret(settings: Settings, purpose: str) -> str:
    if not settings.signing_secret:
        raise CommandFailed(f"set signing_secret (GATEWAY_SIGNING_SECRET) {purpose}", code=2)
    return settings.signing_secret


def print_token(args: argparse.Namespace) -> int:
    settings = options.settings_of(args)
    if args.flow_id not in settings.flows:
        known = ", ".join(settings.flows) or "none configured"
        raise CommandFailed(f"unknown flow {args.flow_id!r} (flows: {known})", code=2)
    secret = _signing_secret(settings, "to sign URLs")
    token = verify.trigger_token(secret, args.flow_id, time.time() + args.expires)
    base = (args.base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    print(f"{base}/api/v1/webhook/{quote(args.flow_id, safe='')}?token={token}")
    return 0


def print_callback_secret(args: argparse.Namespace) -> int:
    secret = _signing_secret(options.settings_of(args), "first")
    try:
        origin = signing.callback_origin(args.url)
    except ValueError as exc:
        raise CommandFailed(f"url: {exc}", code=2) from None
    print(f"hookgate: the secret of per-run callbacks to {origin}", file=sys.stderr)
    print(signing.callback_secret(secret, origin))
    return 0
