"""Plain-text output for the operator commands: aligned tables and short, safe, readable cells.

Cells often hold text that came from outside (receiver responses, error messages, URLs), so
every cell is made printable first: no terminal escape sequences, no line breaks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway import clock

EMPTY = "-"


def printable(text: str) -> str:
    """One line of text with control characters (escape sequences, newlines, tabs) spelled out."""
    return "".join(
        char if char.isprintable() else ("\\n" if char == "\n" else repr(char)[1:-1])
        for char in text
    )


def clip(text: str | None, width: int) -> str:
    """``text`` made printable and cut to ``width`` characters, ending in … when cut."""
    if text is None or text == "":
        return EMPTY
    line = printable(text)
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def snippet(body: bytes, width: int = 60) -> str:
    """The first bytes of a response body, as one printable line."""
    return clip(body[: width * 4].decode("utf-8", errors="replace").strip(), width)


def when(timestamp: float | None, *, millis: bool = False) -> str:
    """A UTC time such as ``2025-01-31 12:00:00Z`` (``…:00.123Z`` with ``millis``)."""
    if timestamp is None:
        return EMPTY
    moment = clock.utc(timestamp)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, with the header on top."""
    lines = [list(header), *([printable(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Iterable[tuple[str, str]]) -> str:
    """``name   value`` lines, the values aligned."""
    items = [(name, printable(value)) for name, value in pairs]
    width = max((len(name) for name, _ in items), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in items)
