"""The ``/inspect`` live feed hears other processes too: their commits, heard on the store's
change feed, are announced to this process's pages like its own writes are."""

from __future__ import annotations

from gateway.inspect.feed import Notifier
from gateway.store.changes import ChangeSource

# store change kind → (page change kind, the id field pages filter on)
KINDS = {
    "trigger.created": ("trigger", "trigger_id"),
    "run.created": ("run", "run_id"),
    "run.claimed": ("run", "run_id"),
    "run.queued": ("run", "run_id"),
    "run.ended": ("run_end", "run_id"),
    "delivery.enqueued": ("delivery", "delivery_id"),
    "delivery.due": ("delivery", "delivery_id"),
    "delivery.attempted": ("attempt", "delivery_id"),
    "endpoint.changed": ("endpoint", "endpoint_id"),
    "bin.captured": ("capture", "bin_id"),
    "bin.changed": ("bin", "bin_id"),
}


async def republish(source: ChangeSource, notifier: Notifier) -> None:
    """Forever: other processes' changes, as this process's page changes. A page filters on
    the id it shows; a change without it (too many ids to list) makes every page re-read."""
    async with source.subscribe() as heard:
        while True:
            change = await heard.get()
            if change.resync:
                notifier.publish("resync")
                continue
            if change.origin == source.origin:
                continue  # announced by feed.observe when it was written here
            for kind, ids in change.kinds.items():
                if kind not in KINDS:
                    continue
                page_kind, field = KINDS[kind]
                if ids is None:
                    notifier.publish(page_kind)
                for one in ids or ():
                    notifier.publish(page_kind, **{field: one})
