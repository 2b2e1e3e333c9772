"""``hookgate replay``: make deliveries due now through the operator service, and with
``--wait`` follow them until none is pending, printing progress."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Mapping

from gateway import console, errors, models
from gateway.cli.errors import CommandFailed
from gateway.cli.selection import emit, known, selected
from gateway.clock import SystemClock
from gateway.outbox.admin import Admin
from gateway.settings import Settings
from gateway.store import Store, base

TRACK_LIMIT = 1_000_000  # deliveries one ``replay --wait`` follows
WATCH_INTERVAL = 0.25  # seconds between two looks at the replayed deliveries
QUIET_HINT_AFTER = 5.0  # seconds without any progress before hinting that no gateway may be running


@dataclasses.dataclass(frozen=True)
class _Replayed:
    count: int
    tracked: Mapping[str, int]  # delivery id → attempts when replayed (only with --wait)
    scope: base.DeliverySelection  # a selection that holds every tracked delivery
    endpoint_ids: frozenset[str]  # where they go, to warn about endpoints that hold them


async def replay_deliveries(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    admin = Admin(store, SystemClock(), settings, settings.flows)
    if args.delivery_id is not None:
        replayed = await _replay_one(admin, args.delivery_id)
    else:
        replayed = await _replay_selection(admin, args)
    if replayed.count == 0:
        return 0
    held = await _held_endpoints(store, replayed.endpoint_ids, time.time())
    for note in held:
        emit(f"note: {note}")
    if not args.wait:
        them = "it" if replayed.count == 1 else "them"
        emit(
            f"a running gateway sends {them} on its next poll (within "
            f"{settings.poll_interval:g} s); see hookgate deliveries list"
        )
        return 0
    return await _follow(store, replayed, args.timeout, hint=not held)


async def _replay_one(admin: Admin, delivery_id: str) -> _Replayed:
    try:
        delivery = await admin.retry(delivery_id)
    except errors.NotFound:
        raise CommandFailed(f"unknown delivery {delivery_id}") from None
    emit(f"delivery {delivery.delivery_id} is due now (attempts so far: {delivery.attempts})")
    return _Replayed(
        count=1,
        tracked={delivery.delivery_id: delivery.attempts},
        scope=base.DeliverySelection(run_id=delivery.run_id, endpoint_id=delivery.endpoint_id),
        endpoint_ids=frozenset(i for i in [delivery.endpoint_id] if i is not None),
    )


async def _replay_selection(admin: Admin, args: argparse.Namespace) -> _Replayed:
    store = admin.store
    await known(store, args)
    selection = selected(args, default=(models.DeliveryStatus.FAILED.value,))
    chosen: list[models.Delivery] = []
    if args.wait:  # which ones, to follow them once replayed
        chosen = await store.list_deliveries(selection, limit=TRACK_LIMIT)
    count = await admin.replay(selection)
    emit(f"replayed {count} {_plural(count)} ({_describe(selection)})")
    endpoint_ids = {selection.endpoint_id, *(d.endpoint_id for d in chosen)}
    return _Replayed(
        count=count,
        tracked={d.delivery_id: d.attempts for d in chosen},
        scope=dataclasses.replace(selection, statuses=()),
        endpoint_ids=frozenset(i for i in endpoint_ids if i is not None),
    )


async def _held_endpoints(store: Store, endpoint_ids: frozenset[str], now: float) -> list[str]:
    """Why a gateway would not send to these endpoints now, one sentence each."""
    notes = []
    for endpoint_id in sorted(endpoint_ids):
        endpoint = await store.get_endpoint(endpoint_id)
        if endpoint is None:
            notes.append(f"endpoint {endpoint_id} no longer exists: its deliveries fail")
            continue
        state = endpoint.state(now)
        if state == "circuit_open":
            notes.append(
                f"endpoint {endpoint_id} has its circuit open after "
                f"{endpoint.consecutive_failures} failures: the gateway sends one probe at "
                f"{console.when(endpoint.circuit_open_until)}, the rest once one succeeds"
            )
        elif state != "active":
            reason = f" ({endpoint.disabled_reason})" if endpoint.disabled_reason else ""
            notes.append(
                f"endpoint {endpoint_id} is {state}{reason}: its deliveries wait until it is "
                f"resumed (POST /api/v1/endpoints/{endpoint_id}/resume)"
            )
    return [console.printable(note) for note in notes]


def _plural(count: int) -> str:
    return "delivery" if count == 1 else "deliveries"


def _describe(selection: base.DeliverySelection) -> str:
    parts = [f"status {'|'.join(s.value for s in selection.statuses)}"]
    if selection.endpoint_id is not None:
        parts.insert(0, f"endpoint {selection.endpoint_id}")
    if selection.run_id is not None:
        parts.insert(0, f"run {selection.run_id}")
    if selection.since is not None:
        parts.append(f"since {console.when(selection.since)}")
    if selection.until is not None:
        parts.append(f"until {console.when(selection.until)}")
    return ", ".join(parts)


@dataclasses.dataclass
class _Progress:
    """Where the replayed deliveries stand: settled ones by outcome, pending ones by id."""

    tracked: Mapping[str, int]  # delivery id → attempts when replayed
    settled: dict[str, models.DeliveryStatus | None] = dataclasses.field(default_factory=dict)
    retrying: int = 0

    @property
    def pending(self) -> int:
        return len(self.tracked) - len(self.settled)

    @property
    def delivered(self) -> int:
        return sum(status is models.DeliveryStatus.SUCCEEDED for status in self.settled.values())

    @property
    def failed(self) -> int:
        return len(self.settled) - self.delivered

    def line(self) -> str:
        text = f"{self.delivered}/{len(self.tracked)} delivered, {self.failed} failed"
        if self.pending:
            text += f", {self.pending} pending"
            if self.retrying:
                text += f" ({self.retrying} retrying on their schedule)"
        return text


async def _follow(store: Store, replayed: _Replayed, timeout: float, *, hint: bool) -> int:
    """Print progress until none of the replayed deliveries is pending, or ``timeout`` passes."""
    emit(f"waiting up to {timeout:g} s for a running gateway to send them")
    tracked = replayed.tracked
    progress = _Progress(tracked)
    pending_scope = dataclasses.replace(replayed.scope, statuses=(models.DeliveryStatus.PENDING,))
    started = time.monotonic()
    shown, hinted = "", not hint
    while True:
        waiting = {
            d.delivery_id: d.attempts
            for d in await store.list_deliveries(pending_scope, limit=TRACK_LIMIT)
            if d.delivery_id in tracked
        }
        for delivery_id in tracked.keys() - waiting.keys() - progress.settled.keys():
            delivery = await store.get_delivery(delivery_id)
            progress.settled[delivery_id] = None if delivery is None else delivery.status
        progress.retrying = sum(waiting[i] > tracked[i] for i in waiting)
        line = progress.line()
        if line != shown:
            emit(line)
            shown = line
        if not progress.pending:
            break
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            raise CommandFailed(
                f"timed out after {timeout:g} s with {progress.pending} still pending: they stay "
                "due, and a running gateway sends them (is one running on this database?)"
            )
        if not hinted and elapsed >= QUIET_HINT_AFTER and not progress.settled:
            emit("nothing sent yet: is a gateway running on this database?")
            hinted = True
        await asyncio.sleep(WATCH_INTERVAL)
    if progress.failed:
        raise CommandFailed(
            f"{progress.failed} of {len(tracked)} not delivered; "
            "see hookgate deliveries list --status failed"
        )
    return 0
