"""The store's LangGraph verbs: threads, their states and crons (``ThreadStore``, on top of
``base.Store``), and the queries they take.

A thread's status and values are derived from its runs and their events, so they can never
disagree with them; only metadata and manual state updates are stored for the thread itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from gateway import models
from gateway.store.base import NewRun

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")


@dataclasses.dataclass(frozen=True)
class ThreadSearch:
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ids: tuple[str, ...] = ()
    status: str | None = None
    limit: int = 10
    offset: int = 0
    sort_by: str = "updated_at"
    sort_order: str = "desc"


CRON_SETTABLE = (
    "schedule",
    "timezone",
    "payload",
    "metadata",
    "on_run_completed",
    "enabled",
    "end_time",
    "next_run_date",
)


@dataclasses.dataclass(frozen=True)
class CronSearch:
    flow_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    limit: int = 10
    offset: int = 0
    sort_by: str = "created_at"
    sort_order: str = "desc"


@dataclasses.dataclass(frozen=True)
class CronFiring:
    """Fire ``cron_id`` for its due date ``due``: insert ``run`` and move the cron to ``next_run_date``
    (``None`` disables it), in one transaction, only if the cron is still due at ``due``."""

    cron_id: str
    due: float
    next_run_date: float | None
    run: NewRun


class ThreadStore(Protocol):
    """The verbs the LangGraph surface needs, on top of ``Store``."""

    async def create_thread(
        self, thread: models.Thread, if_exists: str
    ) -> tuple[models.Thread, bool]:
        """Insert, or (``if_exists="do_nothing"``) return the existing one with ``False``;
        ``"raise"`` returns the existing one with ``False`` too and the caller answers 409."""

    async def get_thread(self, thread_id: str) -> models.Thread | None: ...

    async def update_thread(
        self, thread_id: str, metadata: Mapping[str, Any], now: float, ttl: dict[str, Any] | None
    ) -> models.Thread | None:
        """Merge ``metadata`` into the thread's."""

    async def delete_thread(self, thread_id: str) -> bool:
        """The thread, its state updates, its runs and their events."""

    async def search_threads(self, search: ThreadSearch) -> list[models.Thread]: ...

    async def count_threads(self, search: ThreadSearch) -> int: ...

    async def list_checkpoints(self, thread_id: str) -> list[models.Checkpoint]:
        """Every state of the thread, newest first."""

    async def add_thread_state(
        self, thread_id: str, checkpoint_id: str, values: Any, as_node: str | None, now: float
    ) -> None: ...

    async def list_thread_runs(
        self, thread_id: str, limit: int, offset: int, status: str | None
    ) -> list[models.Run]:
        """Newest first."""

    async def inflight_runs(self, thread_id: str | None) -> list[models.Run]:
        """Pending or running runs of the thread (of every thread, stateless runs included,
        when None), oldest first."""

    async def delete_run(self, run_id: str) -> bool:
        """The run and its events (its deliveries stay: they are the record of what was sent)."""

    async def list_thread_events(self, thread_id: str, after_id: int) -> list[models.Event]: ...

    async def create_cron(self, cron: models.Cron) -> models.Cron: ...

    async def get_cron(self, cron_id: str) -> models.Cron | None: ...

    async def update_cron(
        self, cron_id: str, changes: Mapping[str, Any], now: float
    ) -> models.Cron | None:
        """Set the given ``CRON_SETTABLE`` fields."""

    async def delete_cron(self, cron_id: str) -> bool: ...

    async def search_crons(self, search: CronSearch) -> list[models.Cron]: ...

    async def count_crons(self, search: CronSearch) -> int: ...

    async def due_crons(self, now: float, limit: int) -> list[models.Cron]: ...

    async def fire_cron(self, firing: CronFiring, now: float) -> models.Run | None:
        """None if the firing was already claimed (by another scheduler, or before a restart)."""
