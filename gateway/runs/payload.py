"""The shapes a run takes on the wire: LangGraph's run object and its webhook payload."""

from __future__ import annotations

import json
from typing import Any

from gateway import clock, models


def run_view(run: models.Run) -> dict[str, Any]:
    """LangGraph's run shape (``run_id`` … ``multitask_strategy``) plus hookgate's fields."""
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "metadata": run.metadata,
        "status": run.status.value,
        "kwargs": {**run.kwargs, "input": run.input},
        "multitask_strategy": run.kwargs.get("multitask_strategy", "reject"),
        "created_at": clock.isoformat(run.created_at),
        "updated_at": clock.isoformat(run.updated_at),
        "langsmith_session_name": None,
        "flow_id": run.flow_id,
        "attempt": run.attempt,
        "run_started_at": clock.isoformat(run.started_at),
        "run_ended_at": clock.isoformat(run.ended_at),
        "values": run.output,
        "error": run.error,
    }


def completion_payload(run: models.Run, sent_at: float) -> bytes:
    """What LangGraph Agent Server POSTs to a run's webhook, plus ``flow_id``.

    ``webhook_sent_at`` is when the delivery was queued: the body is signed once and sent
    byte for byte on every retry, so it cannot carry the time of each try (the
    ``webhook-timestamp`` header does).
    """
    view = run_view(run)
    body = {
        key: view[key]
        for key in (
            "run_id",
            "thread_id",
            "assistant_id",
            "metadata",
            "status",
            "kwargs",
            "multitask_strategy",
            "created_at",
            "updated_at",
            "langsmith_session_name",
            "run_started_at",
            "run_ended_at",
        )
    }
    body["webhook_sent_at"] = clock.isoformat(sent_at)
    body["values"] = run.output
    if run.error is not None:
        body["error"] = run.error
    body["flow_id"] = run.flow_id
    # allow_nan=False: a flow's NaN or Infinity would otherwise go out, signed, as invalid JSON.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
