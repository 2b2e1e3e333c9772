"""The store's change feed: what each commit changed, as kinds and ids, never the rows.

A backend publishes one ``Changes`` per committed transaction (PostgreSQL: one ``NOTIFY`` each,
heard by every process on the database). Subscribers wake up on the kinds they care about and
read the rows through the store. Memory holds only this fan-out: a slow subscriber loses
changes and receives a ``resync`` instead, never data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from gateway import models
from gateway.fanout import FanOut
from gateway.store import base

MAX_IDS = 50
"""More ids of one kind than this travel as ``None``: "many, re-read" (NOTIFY payloads are
small, and a reader of many rows re-reads anyway)."""

Ids = tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class Changes:
    """What one commit changed: ids by kind (``"run.created"``, ``"event.appended"``, …).

    ``origin`` names the store instance that wrote it, so a process can tell its own commits
    (already signalled in memory) from other processes'. ``resync`` means changes were lost:
    re-read everything.
    """

    kinds: Mapping[str, Ids]
    origin: str = ""
    resync: bool = False

    def ids(self, kind: str) -> Ids:
        """The ids of ``kind`` (empty if it did not change; None if too many to list)."""
        return self.kinds.get(kind, ())

    def touches(self, *kinds: str) -> bool:
        return self.resync or any(kind in self.kinds for kind in kinds)

    def encode(self) -> str:
        return json.dumps(
            {"o": self.origin, "k": dict(self.kinds)}, separators=(",", ":"), ensure_ascii=True
        )

    @classmethod
    def decode(cls, text: str) -> Changes:
        """Parse a payload; anything unreadable becomes a resync, never an error."""
        try:
            raw = json.loads(text)
            kinds = {
                str(kind): None if ids is None else tuple(str(i) for i in ids)
                for kind, ids in raw["k"].items()
            }
            return cls(kinds, origin=str(raw["o"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return RESYNC


RESYNC = Changes({}, resync=True)


def created_kinds(run: models.Run, now: float) -> dict[str, list[str]]:
    """A new run's kinds: ``run.queued`` too when another process could claim it now."""
    queued = run.status is models.RunStatus.PENDING and run.created_at <= now
    return {"run_created": [run.run_id], "run_queued": [run.run_id] if queued else []}


def touched_thread(run: base.NewRun) -> list[str]:
    """The thread whose metadata a new run's transaction merged into, if any."""
    return [run.thread_id] if run.thread_id and run.thread_metadata is not None else []


def changes(origin: str, **kinds: Iterable[str] | None) -> Changes:
    """``Changes`` from keyword kinds (``run_created=[…]`` is ``"run.created"``), empty ones
    left out, long id lists cut to None."""
    found: dict[str, Ids] = {}
    for name, ids in kinds.items():
        listed = None if ids is None else tuple(dict.fromkeys(ids))
        if listed == ():
            continue
        found[name.replace("_", ".", 1)] = (
            None if listed is None or len(listed) > MAX_IDS else listed
        )
    return Changes(found, origin=origin)


class ChangeFeed(FanOut[Changes]):
    """In-process fan-out of ``Changes`` to subscribers; a slow one finds ``RESYNC``."""

    def __init__(self, queue_size: int = 1024) -> None:
        super().__init__(RESYNC, queue_size, name="store changes")


@runtime_checkable
class ChangeSource(Protocol):
    """A store that publishes its commits (and other processes' commits) as ``Changes``."""

    @property
    def origin(self) -> str:
        """This store instance's name in ``Changes.origin``."""

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Changes]]: ...
