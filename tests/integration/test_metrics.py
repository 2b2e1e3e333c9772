"""GET /metrics: Prometheus text with what an operator watches."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.testing import Receiver, eventually
from tests.integration.helpers import finished_run


async def scrape(gateway: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await gateway.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_follow_triggers_runs_and_deliveries(
    gateway: Any, receiver: Receiver
) -> None:
    await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    paused = await (await gateway.post("/api/v1/endpoints", json={"url": receiver.url})).json()
    await gateway.post(f"/api/v1/endpoints/{paused['endpoint_id']}/pause")
    receiver.script(500, 200)
    first = await gateway.post("/api/v1/webhook/echo", json={}, headers={"Idempotency-Key": "1"})
    await gateway.post("/api/v1/webhook/echo", json={}, headers={"Idempotency-Key": "1"})
    failed = await gateway.post("/api/v1/webhook/fail", json={})
    run_id = (await first.json())["run_id"]
    await finished_run(gateway, run_id)
    await finished_run(gateway, (await failed.json())["run_id"])
    await receiver.wait_for(3)

    async def delivered() -> bool:
        samples = await scrape(gateway)
        return samples.get(("hookgate_delivery_attempts_total", (("status_class", "2xx"),))) == 2

    await eventually(delivered)
    samples = await scrape(gateway)
    assert samples[("hookgate_triggers_total", (("flow_id", "echo"), ("outcome", "accepted")))] == 1
    assert (
        samples[("hookgate_triggers_total", (("flow_id", "echo"), ("outcome", "duplicate")))] == 1
    )
    assert (
        samples[("hookgate_runs_finished_total", (("flow_id", "fail"), ("status", "error")))] == 1
    )
    assert samples[("hookgate_delivery_attempts_total", (("status_class", "5xx"),))] == 1
    assert samples[("hookgate_trigger_to_delivered_seconds_count", ())] == 2
    assert samples[("hookgate_endpoints", (("state", "paused"),))] == 1
    assert samples[("hookgate_endpoints", (("state", "active"),))] == 1
    assert samples[("hookgate_deliveries_pending", ())] == 2, "the paused endpoint's two"
    assert samples[("hookgate_oldest_due_delivery_age_seconds", ())] > 0
