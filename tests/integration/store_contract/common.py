"""Shared by the contract tests: the store type, fixed times, and records to store."""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.fernet import Fernet

from gateway import models
from gateway.store import Store, base, thread_store

NOW = 1_800_000_000.0
CLAIM = base.ClaimPolicy(max_concurrency=10, circuit_failure_threshold=5)
BACKENDS = ["sqlite", "postgres"]
SECRET_KEY = Fernet.generate_key().decode()  # GATEWAY_SECRET_KEY of the stores tests open


class FullStore(
    Store, thread_store.ThreadStore, base.InspectStore, base.RelayStore, base.PruneStore, Protocol
):
    """Every verb a backend implements."""


class OpenStore(Protocol):
    def __call__(self, secret_key: str = SECRET_KEY) -> FullStore:
        """A new, unopened store on the test's database, closed when the test ends."""


def new_run(flow_id: str = "echo", thread_id: str | None = None, **fields: Any) -> base.NewRun:
    return base.NewRun(
        models.new_id(), flow_id, {"n": 1}, {"webhook": None}, {}, thread_id, **fields
    )


def trigger(
    key: str | None = None, flow_id: str = "echo", received_at: float = NOW, **fields: Any
) -> models.Trigger:
    return models.Trigger(
        trigger_id=models.new_id(),
        flow_id=flow_id,
        received_at=received_at,
        method="POST",
        path=f"/api/v1/webhook/{flow_id}",
        query="",
        headers={"content-type": "application/json"},
        body=b'{"hello": "world"}',
        content_type="application/json",
        source="127.0.0.1",
        idempotency_key=key,
        **fields,
    )


def endpoint(**fields: object) -> models.Endpoint:
    values: dict[str, object] = {
        "endpoint_id": models.new_id(),
        "url": "http://127.0.0.1:9/hook",
        "secret": "whsec_x",
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return models.Endpoint(**values)  # type: ignore[arg-type]


def new_delivery(
    endpoint_id: str | None = None, url: str = "http://127.0.0.1:9/x"
) -> models.NewDelivery:
    return models.NewDelivery(models.new_id(), url, "run.success", b"{}", endpoint_id)


async def finished_with_delivery(store: FullStore) -> tuple[models.Run, str]:
    run = await store.create_run(new_run(), NOW)
    [claimed] = await store.claim_runs(1, NOW, 30)
    delivery = new_delivery()
    ending = base.RunEnding(run.run_id, models.RunStatus.SUCCESS, {"ok": True}, None, [delivery])
    assert await store.finish_run(ending, NOW) is not None
    return claimed, delivery.delivery_id
