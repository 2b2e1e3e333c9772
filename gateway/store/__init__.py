"""Where every durable fact lives. ``store_from_url`` picks the backend from the database URL.

``base`` (with ``thread_store`` for LangGraph's threads and crons) is the protocol both
backends keep; ``sqlite/`` (one file, one process) and
``postgres/`` (shared by many processes) each split their verbs by aggregate over a
connection module. What they share lives here: ``rows`` (rows to models and back), ``sql``
(common SQL and WHERE builders), ``secretbox``, ``changes`` and ``writer`` (SQLite's group
commit).
"""

from __future__ import annotations

from pathlib import Path
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


def local_state_dir(database_url: str) -> Path:
    """Where this install keeps what it generates for itself (``local-secrets.toml``): beside
    the SQLite file, or ``var/`` for a PostgreSQL store (processes on other hosts must then be
    given the same secrets in their configuration)."""
    if backend_of(database_url) == "postgres":
        return Path("var")
    from gateway.store import sqlite

    return sqlite.path_from_url(database_url).parent


def store_from_url(database_url: str, secret_key: str = "", *, must_exist: bool = False) -> Store:
    """``secret_key``: the keys that encrypt endpoint secrets at rest (``GATEWAY_SECRET_KEY``).
    ``must_exist``: open an existing database only, never create one (operator commands)."""
    if backend_of(database_url) == "postgres":
        from gateway.store.postgres import PostgresStore

        return PostgresStore(database_url, secret_key)
    from gateway.store import sqlite

    return sqlite.SQLiteStore(sqlite.path_from_url(database_url), secret_key, must_exist=must_exist)


__all__ = ["Store", "backend_of", "local_state_dir", "store_from_url", "without_password"]
