"""The ``hookgate`` command, a module per command group: ``serve`` (the gateway, ``--workers``),
``token`` and ``secret`` (signing), the operator commands (``deliveries``, ``replay``,
``endpoints``, over ``gateway.outbox.admin`` and the store, and ``prune``), ``migrate`` and ``listen``. Each
command answers failure through ``errors.handle_errors``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway import __version__, listen
from gateway.cli import migrate, operator, serve, tokens
from gateway.cli.serve import banner

__all__ = ["banner", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hookgate",
        description="hookgate: durable webhook triggers in, signed and retried run callbacks out.",
    )
    parser.add_argument("--version", action="version", version=f"hookgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_command(commands)
    tokens.add_commands(commands)
    operator.add_commands(commands)
    migrate.add_command(commands)
    listen.add_command(commands)
    args = parser.parse_args(argv)
    if args.command == "listen":
        return listen.main(args)
    return int(args.run(args))
