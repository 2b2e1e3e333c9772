"""The HTTP surface. This module holds the whole route table; handlers are adapters only."""

from __future__ import annotations

from aiohttp import web

from gateway.api import (
    callback_secret,
    deadlines,
    endpoints,
    health,
    langflow,
    langgraph,
    langgraph_crons,
    langgraph_runs,
    middleware,
    openapi,
    pull,
    runs,
)

middlewares = (
    middleware.errors_as_json,
    deadlines.body_read_deadline,
    middleware.refuse_foreign_hosts,
    middleware.require_api_key,
    middleware.refuse_cross_site_writes,
)


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/healthz", health.healthz)
    router.add_get("/metrics", health.metrics)
    openapi.setup(app)  # /openapi.json and /docs, made from this table and schema.operations

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
    router.add_post("/api/v1/endpoints/{endpoint_id}/pull", pull.pull)
    router.add_get("/api/v1/webhook-secret", callback_secret.webhook_secret)

    router.add_get("/api/v1/deliveries", endpoints.list_deliveries)
    router.add_get("/api/v1/deliveries/{delivery_id}", endpoints.get_delivery)
    router.add_post("/api/v1/deliveries/{delivery_id}/retry", endpoints.retry_delivery)
    router.add_post("/api/v1/deliveries/{delivery_id}/ack", pull.ack)
    pull.setup(app)  # consumers of pull endpoints (hookgate listen)

    # LangGraph Agent Server: assistants, threads, runs, streams, crons
    router.add_get("/ok", langgraph.ok)
    router.add_get("/info", langgraph.info)
    router.add_post("/assistants/search", langgraph.search_assistants)
    router.add_post("/assistants/count", langgraph.count_assistants)
    router.add_get("/assistants/{assistant_id}", langgraph.get_assistant)
    router.add_get("/assistants/{assistant_id}/graph", langgraph.get_graph)
    router.add_get("/assistants/{assistant_id}/schemas", langgraph.get_schemas)
    router.add_get("/assistants/{assistant_id}/subgraphs", langgraph.get_subgraphs)
    router.add_post("/assistants/{assistant_id}/versions", langgraph.get_versions)
    router.add_post("/threads", langgraph.create_thread)
    router.add_post("/threads/search", langgraph.search_threads)
    router.add_post("/threads/count", langgraph.count_threads)
    router.add_get("/threads/{thread_id}", langgraph.get_thread)
    router.add_patch("/threads/{thread_id}", langgraph.update_thread)
    router.add_delete("/threads/{thread_id}", langgraph.delete_thread)
    router.add_post("/threads/{thread_id}/copy", langgraph.copy_thread)
    router.add_get("/threads/{thread_id}/state", langgraph.get_state)
    router.add_post("/threads/{thread_id}/state", langgraph.update_state)
    router.add_post("/threads/{thread_id}/state/checkpoint", langgraph.get_state_at)
    router.add_get("/threads/{thread_id}/state/{checkpoint_id}", langgraph.get_state_at)
    router.add_post("/threads/{thread_id}/history", langgraph.history)
    router.add_get("/threads/{thread_id}/history", langgraph.history)
    router.add_post("/threads/{thread_id}/runs", langgraph_runs.create_run)
    router.add_post("/threads/{thread_id}/runs/stream", langgraph_runs.stream_run)
    router.add_post("/threads/{thread_id}/runs/wait", langgraph_runs.wait_run)
    router.add_get("/threads/{thread_id}/runs", langgraph_runs.list_runs)
    router.add_get("/threads/{thread_id}/runs/{run_id}", langgraph_runs.get_run)
    router.add_delete("/threads/{thread_id}/runs/{run_id}", langgraph_runs.delete_run)
    router.add_post("/threads/{thread_id}/runs/{run_id}/cancel", langgraph_runs.cancel_run)
    router.add_get("/threads/{thread_id}/runs/{run_id}/join", langgraph_runs.join_run)
    router.add_get("/threads/{thread_id}/runs/{run_id}/stream", langgraph_runs.join_stream)
    router.add_get("/threads/{thread_id}/stream", langgraph_runs.thread_stream)
    router.add_post("/runs", langgraph_runs.create_run)
    router.add_post("/runs/stream", langgraph_runs.stream_run)
    router.add_post("/runs/wait", langgraph_runs.wait_run)
    router.add_post("/runs/batch", langgraph_runs.create_batch)
    router.add_post("/runs/cancel", langgraph_runs.cancel_many)
    router.add_get("/runs/{run_id}/stream", langgraph_runs.join_stream)
    router.add_get("/runs/{run_id}/join", langgraph_runs.join_run)
    router.add_post("/runs/crons", langgraph_crons.create_cron)
    router.add_post("/runs/crons/search", langgraph_crons.search_crons)
    router.add_post("/runs/crons/count", langgraph_crons.count_crons)
    router.add_get("/runs/crons/{cron_id}", langgraph_crons.get_cron)
    router.add_patch("/runs/crons/{cron_id}", langgraph_crons.update_cron)
    router.add_delete("/runs/crons/{cron_id}", langgraph_crons.delete_cron)
    router.add_post("/threads/{thread_id}/runs/crons", langgraph_crons.create_cron)
    langgraph.setup(app)
