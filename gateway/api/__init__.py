"""The HTTP surface. This module holds the whole route table; handlers are adapters only."""

from __future__ import annotations

from aiohttp import web

from gateway.api import endpoints, health, langflow, middleware, runs

middlewares = (middleware.errors_as_json, middleware.require_api_key)


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/healthz", health.healthz)
    router.add_get("/metrics", health.metrics)

    router.add_post("/api/v1/webhook/{flow_id}", langflow.webhook)
    router.add_post("/webhook/{flow_id}", langflow.webhook)

    # Langflow's run and build APIs (flows by id, endpoint_name or UUID; a job id is a run id)
    router.add_post("/api/v1/run/advanced/{flow_id}", langflow.run_advanced)
    router.add_post("/api/v1/run/{flow_id}", langflow.run_flow)
    router.add_post("/api/v1/build/{flow_id}/flow", langflow.build_flow)
    router.add_get("/api/v1/build/{job_id}/events", langflow.build_events)
    router.add_post("/api/v1/build/{job_id}/cancel", langflow.build_cancel)
    langflow.setup(app)

    router.add_get("/api/v1/runs/{run_id}", runs.get_run)
    router.add_post("/api/v1/runs/{run_id}/redeliver", endpoints.redeliver_run)

    router.add_post("/api/v1/endpoints", endpoints.create_endpoint)
    router.add_get("/api/v1/endpoints", endpoints.list_endpoints)
    router.add_get("/api/v1/endpoints/{endpoint_id}", endpoints.get_endpoint)
    router.add_patch("/api/v1/endpoints/{endpoint_id}", endpoints.update_endpoint)
    router.add_delete("/api/v1/endpoints/{endpoint_id}", endpoints.delete_endpoint)
    router.add_post("/api/v1/endpoints/{endpoint_id}/pause", endpoints.pause_endpoint)
    router.add_post("/api/v1/endpoints/{endpoint_id}/resume", endpoints.resume_endpoint)
    router.add_post("/api/v1/endpoints/{endpoint_id}/rotate-secret", endpoints.rotate_secret)
    router.add_post("/api/v1/endpoints/{endpoint_id}/recover", endpoints.recover_endpoint)

    router.add_get("/api/v1/deliveries", endpoints.list_deliveries)
    router.add_get("/api/v1/deliveries/{delivery_id}", endpoints.get_delivery)
    router.add_post("/api/v1/deliveries/{delivery_id}/retry", endpoints.retry_delivery)

    # LangGraph Agent Server (issue 5): assistants, threads, runs, streams, crons; also
    # registers the context that runs the cron scheduler.
    from gateway.api import langgraph

    langgraph.setup(app)
