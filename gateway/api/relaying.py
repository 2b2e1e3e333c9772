"""An endpoint's relay fields on the API: ``mode``, ``payload``, ``forward_headers``,
``filter`` and ``transform``, read (each refusal a 422 naming the field and, for an
expression, quoting its parser) and shown. The rules are ``gateway.outbox.routing``'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import errors, models
from gateway.api import inputs
from gateway.outbox import routing


def view(endpoint: models.Endpoint) -> dict[str, Any]:
    return {
        "mode": endpoint.mode,
        "payload": endpoint.payload,
        "forward_headers": None
        if endpoint.forward_headers is None
        else list(endpoint.forward_headers),
        "filter": endpoint.filter,
        "transform": None
        if endpoint.transform is None
        else {endpoint.transform_language: endpoint.transform},
    }


def fields(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The relay fields present in ``data``, validated; ``mode`` only when creating."""
    found: dict[str, Any] = {}
    try:
        if "mode" in data:
            if not creating:
                raise routing.FieldError(
                    "mode: an endpoint keeps the mode it was created with; create another"
                )
            found["mode"] = inputs.choice(data, "mode", routing.MODES, "push")
        if "payload" in data:
            found["payload"] = inputs.choice(data, "payload", routing.PAYLOADS, "run")
        if "forward_headers" in data:
            names = inputs.string_list(data, "forward_headers")
            found["forward_headers"] = (
                None if names is None else routing.check_forward_headers(names)
            )
        if "filter" in data:
            expression = inputs.optional(data, "filter", str)
            found["filter"] = None if expression is None else routing.check_filter(expression)
        if "transform" in data:
            found.update(_transform(data["transform"]))
    except routing.FieldError as exc:
        raise errors.Unprocessable(str(exc)) from None
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
