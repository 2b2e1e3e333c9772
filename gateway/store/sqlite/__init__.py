"""The embedded store: SQLite in WAL mode, one group-committing writer, one reader connection.

Each aggregate's verbs live in their own module (runs, deliveries, endpoints, threads,
inspection, relay, retention); ``connection`` holds the file, its lock, the migrations, the writer and
the reader.
"""

from __future__ import annotations

from gateway.store.sqlite.connection import (
    MIGRATIONS,
    lock_database,
    path_from_url,
    serve_file,
    stop_serving,
)
from gateway.store.sqlite.deliveries import DeliveryVerbs, record_outcome
from gateway.store.sqlite.endpoints import EndpointVerbs
from gateway.store.sqlite.inspection import InspectVerbs
from gateway.store.sqlite.relay import RelayVerbs
from gateway.store.sqlite.retention import PruneVerbs
from gateway.store.sqlite.runs import RunVerbs
from gateway.store.sqlite.threads import ThreadVerbs


class SQLiteStore(
    RunVerbs, DeliveryVerbs, EndpointVerbs, ThreadVerbs, InspectVerbs, RelayVerbs, PruneVerbs
):
    """Every verb of ``Store``, ``ThreadStore``, ``InspectStore``, ``RelayStore`` and
    ``PruneStore``, each write one job of the group-committing writer (a prune, one a batch)."""


__all__ = [
    "MIGRATIONS",
    "SQLiteStore",
    "lock_database",
    "path_from_url",
    "record_outcome",
    "serve_file",
    "stop_serving",
]
