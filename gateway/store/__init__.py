"""Where every durable fact lives. ``open_store`` picks the backend from the database URL."""

from __future__ import annotations

from gateway.store.base import Store


def store_from_url(database_url: str) -> Store:
    from gateway.store import sqlite

    return sqlite.SQLiteStore(sqlite.path_from_url(database_url))


__all__ = ["Store", "store_from_url"]
