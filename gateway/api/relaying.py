"""An endpoint's relay fields as the API shows them: ``mode``, ``payload``,
``forward_headers``, ``filter`` and ``transform`` (their rules: ``gateway.outbox.endpoint_fields``)."""

from __future__ import annotations

from typing import Any

from gateway import models


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
