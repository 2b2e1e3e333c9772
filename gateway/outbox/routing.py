"""Relaying per endpoint: which triggers an endpoint receives (``filter``), in which shape
(the run object, or the request as received with the sender's event headers) and how its JSON
is reshaped (``transform``).

Pure rules, each in one function: the endpoint registry validates with them, the run service
routes a run's ending with them, and the dispatcher and the pull consumer API render what
they send with them. Filters and transforms are operator input: they are checked when an
endpoint is registered (``FieldError`` carries the parser's message), and a failure while one
runs is a clear message (``TransformFailed``), never an error of the gateway. JMESPath runs
here; a Jinja2 template runs sandboxed in a separate process (``gateway.outbox.templates``),
so that no template can hold the gateway's CPU or memory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

import jmespath
import jmespath.exceptions
import jmespath.parser

from gateway import log, models, strictjson
from gateway.outbox import templates

Payload = Literal["run", "raw"]
PAYLOADS: tuple[str, ...] = get_args(Payload)
Mode = Literal["push", "pull"]
MODES: tuple[str, ...] = get_args(Mode)
LANGUAGES = ("jmespath", "jinja")
MAX_EXPRESSION = 2048
MAX_HEADERS = 50
MAX_ERROR = 500

DEFAULT_FORWARD_HEADERS = (
    # GitHub
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    # GitLab (X-Gitlab-Token is a secret: never forwarded)
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Gitlab-Webhook-UUID",
    "X-Gitlab-Instance",
    # Bitbucket (its X-Event-Key is stored masked, as every *key* header is)
    "X-Request-UUID",
    "X-Hook-UUID",
    # Shopify
    "X-Shopify-Topic",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-Shopify-Shop-Domain",
    # Linear
    "Linear-Event",
    "Linear-Delivery",
)
"""The sender's event and delivery headers a raw endpoint receives unless it names others.
Stripe sends none (the event type is in its body) besides ``Stripe-Signature``, which is never
forwarded."""

# Names a raw endpoint may not forward: how the body travels (hookgate sends the body as
# stored, already decoded, with its own length), the connection itself, and hookgate's own
# Standard Webhooks headers. Secret-named headers are refused by ``log.is_secret_name``.
_NOT_FORWARDABLE = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_OWN_PREFIXES = ("webhook-", "proxy-")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")


class FieldError(ValueError):
    """An endpoint field an operator gave cannot be used; the message names it and says why."""


class TransformFailed(Exception):
    """A transform could not produce a payload; the message becomes the attempt's error (cut
    to ``MAX_ERROR`` characters: a parser may quote the payload it failed on)."""

    def __init__(self, message: str) -> None:
        super().__init__(message if len(message) <= MAX_ERROR else message[:MAX_ERROR] + "…")


# --- validation at registration -------------------------------------------------------------


def check_filter(expression: str) -> str:
    """A filter that parses (JMESPath); ``FieldError`` with the parser's message otherwise."""
    _compile("filter", expression)
    return expression


def check_transform(language: str, source: str) -> tuple[str, str]:
    """A transform that parses, in a known language; ``FieldError`` with the parser's message."""
    if language == "jmespath":
        _compile("transform", source)
    elif language == "jinja":
        try:
            templates.check(source)
        except templates.TemplateProblem as exc:
            raise FieldError(f"transform: {exc}") from None
    else:
        raise FieldError(f"transform: the language must be one of {', '.join(LANGUAGES)}")
    return language, source


def check_forward_headers(names: Iterable[str]) -> tuple[str, ...]:
    """Header names a raw endpoint may forward, each once.

    Secret-named headers (``Stripe-Signature``, ``X-Hub-Signature-256``, ``Authorization``,
    ``Cookie``, ``X-Gitlab-Token``…) are refused outright rather than allowed on request:
    hookgate stores them masked, so it could only forward ``****``, and the body it sends is
    signed by hookgate itself (``webhook-signature``) for the receiver to check.
    """
    found: dict[str, str] = {}
    for name in names:
        lowered = name.lower()
        if not _TOKEN.fullmatch(name):
            raise FieldError(f"forward_headers: {name[:100]!r} is not a header name")
        if log.is_secret_name(name):
            raise FieldError(
                f"forward_headers: {name} is never forwarded: hookgate keeps secret, signature "
                "and auth headers masked, and signs what it sends itself (webhook-signature)"
            )
        if lowered in _NOT_FORWARDABLE or lowered.startswith(_OWN_PREFIXES):
            raise FieldError(
                f"forward_headers: {name} is set by hookgate for the request it sends itself"
            )
        found.setdefault(lowered, name)
    if len(found) > MAX_HEADERS:
        raise FieldError(f"forward_headers: at most {MAX_HEADERS} names")
    return tuple(found.values())


def _compile(field: str, expression: str) -> jmespath.parser.ParsedResult:
    if len(expression) > MAX_EXPRESSION:
        raise FieldError(f"{field}: longer than {MAX_EXPRESSION} characters")
    try:
        return _compiled(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise FieldError(f"{field}: {exc}") from None
    except RecursionError:
        raise FieldError(f"{field}: nested too deeply") from None


@functools.lru_cache(maxsize=512)
def _compiled(expression: str) -> jmespath.parser.ParsedResult:
    return jmespath.compile(expression)


# --- routing a run's ending -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """What a run's ending offers its endpoints: the run payload (LangGraph's shape) and, when
    the run came from a trigger, the request as received."""

    run_id: str
    flow_id: str
    event_type: str
    run_payload: bytes
    run_input: Any
    origin_at: float
    trigger: models.Trigger | None = None


@dataclasses.dataclass(frozen=True)
class Routes:
    deliveries: list[models.NewDelivery]
    filtered: list[models.FilteredRoute]


def needs_trigger(endpoints: Sequence[models.Endpoint]) -> bool:
    """Whether routing to these endpoints reads the trigger (a filter, or a raw payload)."""
    return any(e.filter or e.payload == "raw" for e in endpoints)


def route(endpoints: Sequence[models.Endpoint], source: Source, now: float) -> Routes:
    """One delivery per endpoint whose filter matches, in its payload shape; a filtered record
    for each one that does not. ``endpoints`` are those subscribed to the event already."""
    routes = Routes([], [])
    document: dict[str, Any] | None = None
    for endpoint in endpoints:
        if endpoint.filter:
            document = document if document is not None else filter_document(source)
            reason = unmatched(endpoint.filter, document)
            if reason is not None:
                routes.filtered.append(
                    models.FilteredRoute(
                        source.run_id, endpoint.endpoint_id, source.event_type, reason, now
                    )
                )
                continue
        payload, headers = shaped(endpoint, source)
        routes.deliveries.append(
            models.NewDelivery(
                delivery_id=models.new_id(),
                url=endpoint.url,
                event_type=source.event_type,
                payload=payload,
                endpoint_id=endpoint.endpoint_id,
                origin_at=source.origin_at,
                headers=headers,
            )
        )
    return routes


def filter_document(source: Source) -> dict[str, Any]:
    """What a filter sees: the trigger's body (JSON, else its text) and headers (names in
    lower case), the event type, flow and run status. A run started by an API call has its
    input as body and no headers."""
    trigger = source.trigger
    return {
        "body": source.run_input if trigger is None else body_value(trigger.body),
        "headers": {} if trigger is None else lowered(trigger.headers),
        "event_type": source.event_type,
        "flow_id": source.flow_id,
        "status": source.event_type.removeprefix("run."),
    }


def body_value(body: bytes) -> Any:
    try:
        return strictjson.loads(body)
    except strictjson.InvalidJSON:
        return body.decode("utf-8", errors="replace")


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def unmatched(expression: str, document: Mapping[str, Any]) -> str | None:
    """None when the filter selects this trigger; otherwise why not. A filter that fails on
    this input (a function given the wrong type) selects nothing, and says so."""
    try:
        result = _compiled(expression).search(document)
    except (jmespath.exceptions.JMESPathError, RecursionError) as exc:
        return f"the filter failed: {exc}"
    if not _true(result):
        return f"the filter {expression} did not match"
    return None


def _true(value: Any) -> bool:
    """JMESPath's truth: null, false and empty strings, arrays and objects are false; every
    number, 0 included, is true."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def shaped(endpoint: models.Endpoint, source: Source) -> tuple[bytes, dict[str, str]]:
    """The payload bytes and extra headers an endpoint receives before any transform."""
    if endpoint.payload != "raw":
        return source.run_payload, {}
    trigger = source.trigger
    if trigger is None:  # started by an API call: its input is the request's body
        body = json.dumps(source.run_input, separators=(",", ":"), ensure_ascii=False)
        return body.encode(), {"Content-Type": "application/json"}
    names = (
        DEFAULT_FORWARD_HEADERS if endpoint.forward_headers is None else endpoint.forward_headers
    )
    return trigger.body, raw_headers(trigger, names)


def raw_headers(trigger: models.Trigger, names: Iterable[str]) -> dict[str, str]:
    """The original ``Content-Type`` (with its parameters) and the named sender headers it had."""
    received = lowered(trigger.headers)
    headers = {"Content-Type": received.get("content-type") or trigger.content_type}
    for name in names:
        value = received.get(name.lower())
        if value is not None and not log.is_secret_name(name):
            headers[name] = value
    if not headers["Content-Type"]:
        headers["Content-Type"] = "application/octet-stream"
    return headers


# --- rendering what is sent -----------------------------------------------------------------


async def outgoing(delivery: models.Delivery, endpoint: models.Endpoint | None) -> models.Delivery:
    """The delivery as it goes out: its payload through the endpoint's transform, if any
    (then sent as ``application/json``). Runs on every try, so a corrected transform applies
    to the retries and replays that follow; ``TransformFailed`` says what went wrong."""
    if endpoint is None or not endpoint.transform:
        return delivery
    try:
        value = strictjson.loads(delivery.payload)
    except strictjson.InvalidJSON as exc:
        raise TransformFailed(f"transform: the payload is not JSON ({exc})") from None
    if endpoint.transform_language == "jinja":
        context = {
            "payload": value,
            "headers": lowered(delivery.headers),
            "event_type": delivery.event_type,
        }
        try:
            text = await templates.render(endpoint.transform, context)
        except templates.TemplateProblem as exc:
            raise TransformFailed(f"transform: {exc}") from None
        try:
            result = strictjson.loads(text)
        except strictjson.InvalidJSON as exc:
            raise TransformFailed(f"transform: the template's output is not JSON: {exc}") from None
    else:
        result = project(endpoint.transform, value)
    if result is None:
        raise TransformFailed("transform: the result is null, so there is nothing to send")
    body = encode(result)
    headers = {**delivery.headers, "Content-Type": "application/json"}
    return dataclasses.replace(delivery, payload=body, headers=headers)


def project(expression: str, value: Any) -> Any:
    """A JMESPath transform's result."""
    try:
        return _compiled(expression).search(value)
    except (jmespath.exceptions.JMESPathError, RecursionError) as exc:
        raise TransformFailed(f"transform: {exc}") from None


def encode(value: Any, limit: int = templates.MAX_OUTPUT) -> bytes:
    """Compact JSON, refused past ``limit`` bytes before more is built (a projection can repeat
    a large value many times)."""
    size, pieces = 0, []
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        for piece in encoder.iterencode(value):
            size += len(piece)
            if size > limit:
                raise TransformFailed(f"transform: the result is larger than {limit} bytes")
            pieces.append(piece)
    except (ValueError, RecursionError) as exc:
        raise TransformFailed(f"transform: the result is not JSON: {exc}") from None
    return "".join(pieces).encode()
