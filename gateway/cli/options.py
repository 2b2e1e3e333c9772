"""Options and argument types the commands share."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime

from gateway.settings import Settings, load_settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_config(parser: argparse.ArgumentParser, *, database: bool = False) -> None:
    parser.add_argument(
        "--config", help="TOML file (default: $GATEWAY_CONFIG or config/gateway.toml)"
    )
    if database:
        parser.add_argument("--database", help="database URL, e.g. sqlite:///var/gateway.db")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings ``--config`` names, with ``--database`` (where the command has it) applied."""
    settings = load_settings(args.config)
    database = getattr(args, "database", None)
    return settings if database is None else settings.replace(database_url=database)


def duration(text: str) -> float:
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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {text!r}")
    return value


def moment(text: str) -> float:
    """An RFC 3339 date-time (UTC when it names no offset) or epoch seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an RFC 3339 date-time or epoch seconds, got {text!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"expected a finite time, got {text!r}")
    return seconds
