"""How records look on a page: times (absolute and relative), bodies, statuses, curl commands.

Everything here returns plain text or ``Markup`` built from escaped parts: templates never mark
stored data as safe.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import string
from typing import Any
from urllib.parse import parse_qsl

from markupsafe import Markup

from gateway import clock, log, models, strictjson
from gateway.store import base

PREVIEW_BYTES = 64 * 1024
HEX_BYTES = 4096
_PRINTABLE = set(string.printable)

# status → (symbol, tone): the colour is never the only signal, the symbol and the word say it too
STATUS_TONES = {
    "pending": ("◷", "wait"),
    "running": ("▶", "info"),
    "in flight": ("▶", "info"),
    "success": ("✓", "ok"),
    "succeeded": ("✓", "ok"),
    "verified": ("✓", "ok"),
    "active": ("●", "ok"),
    "error": ("✗", "bad"),
    "failed": ("✗", "bad"),
    "rejected": ("✗", "bad"),
    "disabled": ("⊘", "bad"),
    "timeout": ("⌛", "bad"),
    "interrupted": ("■", "warn"),
    "cancelled": ("■", "muted"),
    "filtered": ("⊖", "muted"),
    "paused": ("⏸", "warn"),
    "circuit_open": ("⚡", "warn"),
    "none": ("—", "muted"),
}


def status(value: str) -> Markup:
    """A status chip: symbol + word + colour."""
    key = value.split(":", 1)[0].strip()
    symbol, tone = STATUS_TONES.get(key, ("•", "muted"))
    return Markup('<span class="chip chip-{}"><span aria-hidden="true">{}</span> {}</span>').format(
        tone, symbol, value.replace("_", " ")
    )


def http_status(code: int | None, error: str | None = None) -> Markup:
    """A response's status chip; with no status code, why: in flight (nothing recorded yet),
    outcome unknown (the gateway stopped during the try), or no response (a network error)."""
    if code is None:
        if error is None:
            return status("in flight")
        if error == base.ATTEMPT_OUTCOME_UNKNOWN:
            return Markup(
                '<span class="chip chip-warn"><span aria-hidden="true">?</span> outcome unknown</span>'
            )
        return Markup(
            '<span class="chip chip-bad"><span aria-hidden="true">✗</span> no response</span>'
        )
    tone = "ok" if 200 <= code < 300 else "warn" if code < 500 and code != 410 else "bad"
    symbol = "✓" if tone == "ok" else "✗"
    return Markup('<span class="chip chip-{}"><span aria-hidden="true">{}</span> {}</span>').format(
        tone, symbol, code
    )


def iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return clock.utc(timestamp).isoformat(timespec="milliseconds")


def absolute(timestamp: float) -> str:
    return clock.utc(timestamp).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(timestamp: float, now: float) -> str:
    delta = now - timestamp
    future = delta < 0
    delta = abs(delta)
    if delta < 1:
        text = "just now" if not future else "now"
        return text
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if delta >= size:
            amount = int(delta // size)
            text = f"{amount} {unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def when(timestamp: float | None, now: float) -> Markup:
    """``<time>`` with the absolute time, followed by the relative one (kept fresh by the page script)."""
    if timestamp is None:
        return Markup('<span class="muted">—</span>')
    return Markup(
        '<time datetime="{iso}" title="{absolute}">{short}</time>'
        ' <span class="rel" data-ts="{ts}">{relative}</span>'
    ).format(
        iso=iso(timestamp),
        absolute=absolute(timestamp),
        short=clock.utc(timestamp).strftime("%H:%M:%S"),
        ts=f"{timestamp:.3f}",
        relative=relative(timestamp, now),
    )


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


def short(identifier: str | None) -> str:
    """The tail of a UUIDv7 (its head is the time, the same for ids made together)."""
    if not identifier:
        return "—"
    return identifier[-8:] if len(identifier) > 12 else identifier


@dataclasses.dataclass(frozen=True)
class BodyView:
    kind: str  # json, form, text, binary, empty
    text: str = ""
    pairs: tuple[tuple[str, str], ...] = ()
    truncated: bool = False


def body_view(body: bytes, content_type: str = "") -> BodyView:
    """JSON pretty-printed, a form as a table, text as is, anything else as a hex dump."""
    if not body:
        return BodyView("empty")
    truncated = len(body) > PREVIEW_BYTES
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        try:
            parsed = strictjson.loads(text)
        except strictjson.InvalidJSON:
            parsed = None
        else:
            return BodyView(
                "json", json.dumps(parsed, indent=2, ensure_ascii=False)[:PREVIEW_BYTES]
            )
        if "x-www-form-urlencoded" in content_type:
            pairs = tuple(parse_qsl(text, keep_blank_values=True))
            return BodyView("form", text[:PREVIEW_BYTES], pairs=pairs)
        if all(ch in _PRINTABLE or ord(ch) > 127 for ch in text[:4096]):
            return BodyView("text", text[:PREVIEW_BYTES], truncated=truncated)
    return BodyView("binary", hexdump(body[:HEX_BYTES]), truncated=len(body) > HEX_BYTES)


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  {text}")
    return "\n".join(lines)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def masked_query(query: str) -> str:
    """A query string, decoded for reading, with secret-named parameters masked."""
    pairs = parse_qsl(log.masked_query(query), keep_blank_values=True)
    return "&".join(f"{key}={value}" for key, value in pairs)


def curl_command(trigger: models.Trigger, base_url: str) -> str:
    """The trigger as a curl command line; secret headers are masked (fill them in)."""
    query = f"?{log.masked_query(trigger.query)}" if trigger.query else ""
    url = base_url.rstrip("/") + trigger.path + query
    parts = ["curl", "-X", trigger.method, shlex.quote(url)]
    skip = {"host", "content-length", "connection", "accept-encoding", "user-agent"}
    for name, value in log.masked_headers(trigger.headers).items():
        if name.lower() not in skip:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    try:
        text = trigger.body.decode("utf-8")
    except UnicodeDecodeError:
        parts += ["--data-binary", "@body.bin"]
    else:
        parts += ["--data-binary", shlex.quote(text)]
    return " ".join(parts)
