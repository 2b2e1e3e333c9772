"""structlog set-up: JSON lines when not on a terminal, console in development; secrets redacted.

Redaction is the last step before rendering, after tracebacks are rendered (never with frame
locals), so it sees every string that reaches the output, whatever failed: a value under a
secret-looking name is masked, and so is the literal value of every known secret (configured
ones, endpoint secrets the store has handled, anything shaped like a Standard Webhooks secret,
secret query parameters inside URLs) wherever it appears, exception text included. The
standard library's loggers (aiohttp, asyncio) go through the same chain.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from aiohttp import web

from gateway import models

SECRET_NAME = re.compile(r"token|secret|signature|key|auth|password|cookie", re.IGNORECASE)
"""Names (headers, query parameters, log fields) whose values are secrets: ``X-Gitlab-Token``,
``Authorization``, ``x-api-key``, ``X-Hub-Signature-256``, ``signing_secret``, ``Cookie``."""

_STANDARD_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{8,}={0,2}")
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_PARAMETER = re.compile(r"(?:(?<=[?&;\s])|^)(?P<name>[^=&#\s?]+)=(?P<value>[^&#\s'\"]+)")
_MASKED = re.compile(r"\*{4}.{0,2}|whsec_….{2}")
_MIN_LITERAL = 6  # a shorter "secret" would mask ordinary words; such a value protects nothing
# Replaced, never changed in place: a record logged from another thread reads one or the other.
_configured: frozenset[str] = frozenset()
_endpoint_words: frozenset[str] = frozenset()
_HANDLER_NAME = "hookgate"


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def mask(value: str) -> str:
    """Keep enough to recognise a secret, never enough to use it; a masked value stays as is."""
    if _MASKED.fullmatch(value):
        return value
    if len(value) <= 8:
        return "****"
    return value[:6] + "…" + value[-2:] if value.startswith("whsec_") else "****" + value[-2:]


def masked_headers(headers: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """Headers with every secret-named one masked, except those named in ``keep``."""
    kept = {name.lower() for name in keep}
    return {
        name: mask(value) if is_secret_name(name) and name.lower() not in kept else value
        for name, value in headers.items()
    }


def masked_query(query: str) -> str:
    """A query string with the values of secret-named parameters masked."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(key, mask(value) if is_secret_name(key) else value) for key, value in pairs])


def remember_secrets(*values: str) -> None:
    """Mask these configured values wherever they appear in a log line from now on."""
    global _configured
    new = {value for value in values if len(value) >= _MIN_LITERAL} - _configured
    if new:
        _configured = _configured | new


def remember_endpoint_secret(secret: str) -> None:
    """Mask this endpoint secret in log lines from now on. There may be thousands: those without
    the ``whsec_`` prefix (which a pattern masks anyway) are looked up by word, at a flat cost."""
    global _endpoint_words
    word = secret.removeprefix("whsec_")
    if secret.startswith("whsec_") or word in _endpoint_words:
        return
    if _BASE64_WORD.fullmatch(word):
        _endpoint_words = _endpoint_words | {word}
    else:
        remember_secrets(secret)


def scrub(text: str) -> str:
    """``text`` with every known secret, Standard Webhooks secret and secret URL parameter masked."""
    for secret in _configured:
        if secret in text:
            text = text.replace(secret, mask(secret))
    words = _endpoint_words
    if words:
        text = _BASE64_WORD.sub(
            lambda found: mask(found.group()) if found.group() in words else found.group(), text
        )
    if "whsec_" in text:
        text = _STANDARD_SECRET.sub(lambda found: mask(found.group()), text)
    if "=" in text:
        text = _PARAMETER.sub(_masked_parameter, text)
    return text


def _masked_parameter(found: re.Match[str]) -> str:
    if not is_secret_name(found["name"]):
        return found.group()
    return f"{found['name']}={mask(found['value'])}"


def _redacted(value: Any, secret: bool) -> Any:
    """``value`` with secrets masked; ``secret`` says it sits under a secret-looking name."""
    if isinstance(value, str):
        return (mask(value) if value else value) if secret else scrub(value)
    if isinstance(value, Mapping):
        return {
            key: _redacted(item, secret or (isinstance(key, str) and is_secret_name(key)))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item, secret) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    return (mask(text) if text else text) if secret else scrub(text)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: every field, nested values and rendered exceptions included."""
    for key, value in event.items():
        event[key] = _redacted(value, is_secret_name(key))
    return event


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    tracebacks: Any = (
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if as_json
        else structlog.processors.format_exc_info
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, tracebacks, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(shared, [tracebacks, redact, renderer], threshold)


def _route_standard_logging(shared: list[Any], final: list[Any], threshold: int) -> None:
    """aiohttp's and asyncio's own records get the same redaction and format as ours."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of this request, and hand it back to the caller."""
    structlog.contextvars.clear_contextvars()
    request_id = request.headers.get("x-request-id") or models.new_id()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers.setdefault("x-request-id", request_id)
    return response
