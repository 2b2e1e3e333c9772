"""Where every durable fact lives. ``store_from_url`` picks the backend from the database URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from gateway import errors
from gateway.store.base import Store

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def backend_of(database_url: str) -> str:
    """``"sqlite"`` or ``"postgres"``; any other URL is a configuration error."""
    if database_url.startswith(SQLITE_SCHEME):
        return "sqlite"
    if database_url.startswith(POSTGRES_SCHEMES):
        return "postgres"
    scheme = database_url.split(":", 1)[0] if ":" in database_url else database_url
    raise errors.ConfigError(
        f"database_url must look like sqlite:///path.db or postgresql://user@host:5432/db,"
        f" not {scheme!r}"
    )


def without_password(database_url: str) -> str:
    """The URL to show: a password in it becomes ``***``."""
    try:
        parts = urlsplit(database_url)
        if parts.password is None:
            return database_url
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "***"


def store_from_url(database_url: str) -> Store:
    if backend_of(database_url) == "postgres":
        from gateway.store.postgres import PostgresStore

        return PostgresStore(database_url)
    from gateway.store import sqlite

    return sqlite.SQLiteStore(sqlite.path_from_url(database_url))


__all__ = ["Store", "backend_of", "store_from_url", "without_password"]
