"""Where every durable fact lives. ``open_store`` picks the backend from the database URL."""

from __future__ import annotations

from gateway.store.base import Store


def store_from_url(database_url: str, secret_key: str = "") -> Store:
    """``secret_key``: the keys that encrypt endpoint secrets at rest (``GATEWAY_SECRET_KEY``)."""
    from gateway.store import sqlite

    return sqlite.SQLiteStore(sqlite.path_from_url(database_url), secret_key)


__all__ = ["Store", "store_from_url"]
