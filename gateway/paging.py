"""Cursors for the lists that grow without bound (``GET /api/v1/deliveries``, ``/inspect``'s
triggers, runs and deliveries): an opaque token for the last row a page showed, as Svix's
``iterator`` and Convoy's ``next_page_cursor`` are, handed on in a ``Link: <…>; rel="next"``
header (RFC 8288, as GitHub pages) or the page's "Older" link.

The token is the row's sort key (``base.Position``: its time and id) as compact JSON in
base64url. Opaque to clients, who pass it back as they got it; a malformed one is refused with
the reason (422), never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from yarl import URL

from gateway import models
from gateway.store import base

T = TypeVar("T")

MAX_CURSOR = 400
"""Characters: far above any id's cursor, and a bound on what is decoded."""
_HINT = "pass on the cursor of a previous page's next link as it came"


def encode(position: base.Position) -> str:
    text = json.dumps([position.at, position.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> base.Position:
    """The position ``cursor`` names; ``ValueError`` saying why it is not a cursor."""
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR:
        raise ValueError(f"not a cursor: {_HINT}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise ValueError(f"not a cursor: {_HINT}") from None
    if (
        isinstance(at, bool)
        or not isinstance(at, int | float)
        or not math.isfinite(at)
        or not isinstance(row_id, str)
        or not row_id
    ):
        raise ValueError(f"not a cursor: {_HINT}")
    return base.Position(float(at), row_id)


def next_position(
    page: Sequence[T], limit: int, key: Callable[[T], base.Position]
) -> base.Position | None:
    """Where the next page starts: after the last row, if the page is full (a short page is
    the last one)."""
    return key(page[-1]) if page and len(page) >= limit else None


def next_url(url: URL, position: base.Position | None) -> URL | None:
    """``url`` (the page's own, its filters kept) for the page after ``position``."""
    return None if position is None else url.update_query(cursor=encode(position))


def delivery_position(delivery: models.Delivery) -> base.Position:
    return base.Position(delivery.created_at, delivery.delivery_id)


def run_position(run: models.Run) -> base.Position:
    return base.Position(run.created_at, run.run_id)


def trigger_position(trigger: models.Trigger) -> base.Position:
    return base.Position(trigger.received_at, trigger.trigger_id)
