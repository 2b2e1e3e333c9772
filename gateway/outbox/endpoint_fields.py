"""The rules of an endpoint's writable fields that need the configuration, the registered
flows or a parser, checked once for every way of setting them (the API's JSON, ``/inspect``'s
forms): each refusal an ``Unprocessable`` naming the field and, for an expression, quoting its
parser. The relay rules are ``gateway.outbox.routing``'s.

The fields' shapes (JSON types, numeric bounds) are the API model's
(``gateway.api.schema.hookgate.EndpointPatch``), which also documents them: callers give typed
values, ``None`` for a JSON null, and a field left out is left alone. ``/inspect``'s forms give
text and lists of text only, and the CLI sets no field.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway import errors, models, netguard, settings, signing
from gateway.outbox import routing

LIMITS = ("timeout", "max_concurrency", "rate_limit")
"""Taken as given (bounded by the API's model); null is the default."""


def endpoint_fields(
    typed: Mapping[str, Any],
    config: settings.Settings,
    flow_ids: Collection[str],
    *,
    creating: bool = False,
) -> dict[str, Any]:
    """The fields present in ``typed``, checked; what the store sets."""
    fields: dict[str, Any] = {}
    try:
        fields.update(_relay_fields(typed, creating=creating))
    except routing.FieldError as exc:
        raise errors.Unprocessable(str(exc)) from None
    if typed.get("url") is not None:
        fields["url"] = netguard.check_callback(typed["url"], config)
    if typed.get("secret") is not None:
        fields["secret"] = checked_secret(typed["secret"])
    for name, allowed in (("flow_ids", tuple(flow_ids)), ("event_types", models.EVENT_TYPES)):
        if typed.get(name) is not None:
            fields[name] = _known(name, typed[name], allowed)
    for name in ("description", "enabled"):
        if typed.get(name) is not None:
            fields[name] = typed[name]
    fields.update({name: typed[name] for name in LIMITS if name in typed})
    if "retry_schedule" in typed:
        schedule = typed["retry_schedule"]
        fields["retry_schedule"] = None if schedule is None else tuple(schedule)
    return fields


def checked_secret(secret: str) -> str:
    """A signing secret hookgate can sign with (``whsec_`` and base64, or plain text)."""
    try:
        signing.secret_key(secret)
    except ValueError as exc:
        raise errors.Unprocessable(f"secret: {exc}") from None
    return secret


def _known(name: str, values: Collection[str], allowed: Collection[str]) -> tuple[str, ...]:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise errors.Unprocessable(
            f"{name}: unknown value(s) {', '.join(unknown)}; expected any of {', '.join(allowed)}"
        )
    return tuple(dict.fromkeys(values))


def _choice(typed: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    """The value, one of ``allowed``; null is the first, the default."""
    value = typed[name]
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise routing.FieldError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _relay_fields(typed: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """``mode`` (only when creating), ``payload``, ``forward_headers``, ``filter`` and
    ``transform``, those present."""
    found: dict[str, Any] = {}
    if "mode" in typed:
        if not creating:
            raise routing.FieldError(
                "mode: an endpoint keeps the mode it was created with; create another"
            )
        found["mode"] = _choice(typed, "mode", routing.MODES)
    if "payload" in typed:
        found["payload"] = _choice(typed, "payload", routing.PAYLOADS)
    if "forward_headers" in typed:
        names = typed["forward_headers"]
        found["forward_headers"] = None if names is None else routing.check_forward_headers(names)
    if "filter" in typed:
        expression = typed["filter"]
        found["filter"] = None if expression is None else routing.check_filter(expression)
    if "transform" in typed:
        found.update(_transform(typed["transform"]))
    return found


def _transform(value: Any) -> dict[str, Any]:
    """``"<JMESPath>"``, ``{"jmespath": "…"}`` or ``{"jinja": "<template producing JSON>"}``;
    null removes the transform."""
    if value is None:
        return {"transform": None, "transform_language": "jmespath"}
    if isinstance(value, str):
        value = {"jmespath": value}
    if not (isinstance(value, dict) and len(value) == 1):
        raise routing.FieldError(
            'transform: expected a JMESPath string, {"jmespath": "…"} or {"jinja": "…"}'
        )
    [(language, source)] = value.items()
    if language not in routing.LANGUAGES or not isinstance(source, str):
        raise routing.FieldError(
            f"transform: expected {{<language>: <source text>}} with a language among "
            f"{', '.join(routing.LANGUAGES)}"
        )
    routing.check_transform(language, source)
    return {"transform": source, "transform_language": language}
