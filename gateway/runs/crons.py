"""Crons: schedules parsed by croniter, firings claimed durably.

A firing is claimed by the transaction that inserts its run and moves the cron's
``next_run_date`` past it, guarded by the date it was due at. A crash before that commit
leaves the firing due (it fires after the restart); after it, the run is stored and the cron
has moved on. So a restart neither skips nor doubles a firing, and two schedulers on one
store cannot both fire the same date.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import CroniterBadDateError, croniter

from gateway import errors, models
from gateway.clock import Clock
from gateway.runs import threads as lg
from gateway.store import thread_store

log = structlog.get_logger(__name__)


def check_schedule(schedule: Any) -> str:
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise errors.Unprocessable(f"Invalid cron schedule: {schedule!r}")
    return schedule


def check_timezone(timezone: Any) -> str | None:
    if timezone is None:
        return None
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise errors.Unprocessable(f"Invalid timezone: {timezone!r}") from None
    return str(timezone)


def next_run(schedule: str, timezone: str | None, after: float) -> float | None:
    """The first firing strictly after ``after`` (epoch seconds), in the cron's time zone;
    None when there is none (``0 0 31 2 *``, or a year field that has passed)."""
    zone = ZoneInfo(timezone) if timezone else UTC
    start = datetime.fromtimestamp(after, zone)
    try:
        moment: datetime = croniter(schedule, start).get_next(datetime)
    except CroniterBadDateError:
        return None
    return moment.timestamp()


class CronScheduler:
    def __init__(
        self,
        threads: lg.Threads,
        store: lg.LangGraphStore,
        clock: Clock,
        *,
        poll_interval: float,
        batch: int = 50,
    ) -> None:
        self.threads = threads
        self.store = store
        self.clock = clock
        self.poll_interval = poll_interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cron-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("cron_tick_failed")
            await asyncio.sleep(self.poll_interval)

    async def tick(self) -> int:
        """Fire every due cron once; how many fired."""
        fired = 0
        now = self.clock.now()
        for cron in await self.store.due_crons(now, self.batch):
            if await self.fire(cron, now):
                fired += 1
        if fired:
            self.threads.service.runs_ready.set()
        return fired

    async def fire(self, cron: models.Cron, now: float) -> bool:
        following: float | None = next_run(cron.schedule, cron.timezone, cron.next_run_date)
        if following is not None and following <= now:
            # Down for several firings: fire the one that was due, then resume from now.
            following = next_run(cron.schedule, cron.timezone, now)
        if cron.end_time is not None and following is not None and following > cron.end_time:
            following = None
        request = cron_run_request(cron)
        thread_id = cron.thread_id
        temporary = thread_id is None and cron.on_run_completed != "keep"
        if thread_id is None:
            thread_id = models.new_id()
        new_run = self.threads.new_run(request, thread_id, temporary=temporary)
        run = await self.store.fire_cron(
            thread_store.CronFiring(cron.cron_id, cron.next_run_date, following, new_run), now
        )
        if run is not None:
            log.info("cron_fired", cron_id=cron.cron_id, run_id=run.run_id, due=cron.next_run_date)
        return run is not None


def cron_run_request(cron: models.Cron) -> lg.RunRequest:
    payload = cron.payload
    raw_config = payload.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    raw_configurable = config.get("configurable")
    configurable: dict[str, Any] = raw_configurable if isinstance(raw_configurable, dict) else {}
    config = {**config, "configurable": {**configurable, "cron_id": cron.cron_id}}
    modes = payload.get("stream_mode") or ["values"]
    return lg.RunRequest(
        flow_id=cron.flow_id,
        thread_id=cron.thread_id,
        input=payload.get("input"),
        stream_mode=tuple(modes if isinstance(modes, list) else [modes]),
        webhook=payload.get("webhook"),
        config=config,
        context=payload.get("context") or {},
        metadata={**cron.metadata, **(payload.get("metadata") or {})},
        multitask_strategy=payload.get("multitask_strategy") or "enqueue",
        on_completion=cron.on_run_completed or "delete",
        extra_metadata={"cron_id": cron.cron_id},
    )
