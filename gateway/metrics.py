"""Prometheus metrics: counters where things happen, gauges read from the store at scrape time.

Each app has its own registry, so several apps (tests) never share counts.
"""

from __future__ import annotations

import prometheus_client as prom

from gateway import models
from gateway.store import Store
from gateway.store.retention import Pruned

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.triggers = prom.Counter(
            "hookgate_triggers",
            "Inbound triggers, by flow and outcome (accepted, duplicate, rejected).",
            ["flow_id", "outcome"],
            registry=self.registry,
        )
        self.runs = prom.Counter(
            "hookgate_runs_finished",
            "Runs that ended, by flow and final status.",
            ["flow_id", "status"],
            registry=self.registry,
        )
        self.attempts = prom.Counter(
            "hookgate_delivery_attempts",
            "Delivery attempts, by outcome class (2xx, 3xx, 4xx, 5xx, error).",
            ["status_class"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "hookgate_trigger_to_delivered_seconds",
            "From a trigger's arrival to its run's callback being accepted.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = prom.Gauge(
            "hookgate_deliveries_pending",
            "Deliveries waiting to be sent (due now or later).",
            registry=self.registry,
        )
        self.oldest_due = prom.Gauge(
            "hookgate_oldest_due_delivery_age_seconds",
            "How long the oldest due delivery has been waiting (0 when none is due).",
            registry=self.registry,
        )
        self.endpoints = prom.Gauge(
            "hookgate_endpoints",
            "Registered endpoints, by state (active, paused, circuit_open, disabled).",
            ["state"],
            registry=self.registry,
        )
        self.pruned_rows = prom.Counter(
            "hookgate_pruned_rows",
            "Rows the retention pruner deleted, by kind (deliveries, attempts, events, runs,"
            " triggers, rejected_triggers, captures, threads).",
            ["kind"],
            registry=self.registry,
        )
        self.last_prune = prom.Gauge(
            "hookgate_last_prune_timestamp_seconds",
            "When this process last finished a prune (0 before its first).",
            registry=self.registry,
        )

    def pruned(self, pruned: Pruned) -> None:
        for kind, count in pruned.counts().items():
            self.pruned_rows.labels(kind).inc(count)

    def attempt(self, result: models.AttemptResult) -> None:
        label = "error" if result.status_code is None else f"{result.status_code // 100}xx"
        self.attempts.labels(label).inc()

    async def render(self, store: Store, now: float) -> bytes:
        """Refresh the store-backed gauges, then the text exposition format."""
        pending, oldest_due = await store.delivery_backlog(now)
        self.queue_depth.set(pending)
        self.oldest_due.set(max(0.0, now - oldest_due) if oldest_due is not None else 0.0)
        states = dict.fromkeys(("active", "paused", "circuit_open", "disabled"), 0)
        for endpoint in await store.list_endpoints():
            states[endpoint.state(now)] += 1
        for state, count in states.items():
            self.endpoints.labels(state).set(count)
        return prom.generate_latest(self.registry)


CONTENT_TYPE = prom.CONTENT_TYPE_LATEST
