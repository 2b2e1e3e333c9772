"""The shared store: PostgreSQL, for many hookgate processes on one or many hosts.

Each aggregate's verbs live in their own module (runs, deliveries, endpoints, threads,
inspection); ``pool`` holds the connections, the migrations and the error translation.
"""

from __future__ import annotations

from typing import Any

from gateway.store import base
from gateway.store.postgres.deliveries import DeliveryVerbs
from gateway.store.postgres.endpoints import EndpointVerbs
from gateway.store.postgres.inspection import InspectVerbs
from gateway.store.postgres.relay import RelayVerbs
from gateway.store.postgres.retention import PruneVerbs
from gateway.store.postgres.runs import RunVerbs
from gateway.store.postgres.threads import ThreadVerbs


class PostgresStore(
    RunVerbs, DeliveryVerbs, EndpointVerbs, ThreadVerbs, InspectVerbs, RelayVerbs, PruneVerbs
):
    """Every verb of ``Store``, ``ThreadStore``, ``InspectStore``, ``RelayStore`` and
    ``PruneStore``, one transaction each (a prune, one per batch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = base.new_owner()


__all__ = ["PostgresStore"]
