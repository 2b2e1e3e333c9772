"""``hookgate migrate``: create or upgrade the database schema, then exit."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.cli import options
from gateway.cli.errors import handle_errors
from gateway.log import configure_logging
from gateway.store import store_from_url


def add_command(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database schema, then exit",
        description="Apply the schema migrations the database lacks, and nothing else "
        "(hookgate serve applies them too). Safe while gateways run on a PostgreSQL database.",
    )
    options.add_config(migrate)
    migrate.add_argument("--database", help="database URL, e.g. postgresql://user@host:5432/db")
    migrate.set_defaults(run=lambda args: handle_errors(lambda: run_migrations(args)))


def run_migrations(args: argparse.Namespace) -> int:
    settings = options.settings_of(args)
    configure_logging(settings.log_format, "warning")
    applied = asyncio.run(store_from_url(settings.database_url, settings.secret_key).migrate())
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}")
    else:
        print("the schema is up to date")
    return 0
