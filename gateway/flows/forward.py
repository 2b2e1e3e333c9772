"""The forward flow: ``[flows.<id>] kind = "forward"`` needs no code. Its run's input and output
are the inbound request itself (method, path, query, headers with secrets masked, content type
and body), so an endpoint with the default run payload receives the whole request, and one
with ``"payload": "raw"`` receives its body byte for byte (``gateway/outbox/routing.py``).

Verification, de-duplication, retries, replay and ``/inspect`` work as for any flow's runs.
"""

from __future__ import annotations

from typing import Any

from gateway import models
from gateway.outbox import routing


def request_value(trigger: models.Trigger) -> dict[str, Any]:
    """The request as the run's input: its body as JSON when it is JSON, else as text."""
    return {
        "method": trigger.method,
        "path": trigger.path,
        "query": trigger.query,
        "headers": routing.lowered(trigger.headers),
        "content_type": trigger.content_type,
        "body": routing.body_value(trigger.body),
    }


def forward(value: Any) -> Any:
    """The run's output is its input: the request."""
    return value
