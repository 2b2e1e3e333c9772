"""``/openapi.json`` describes every route the app registers, is a valid OpenAPI 3.1 document,
and is reachable without the API key, as ``/docs`` is (its Swagger UI files come from the
``swagger-ui-py`` package, not a CDN). The responses of the handlers that build their answers
by hand (endpoints, deliveries, Langflow) are checked against the models the document shows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel

from gateway.api.schema import ErrorBody
from gateway.api.schema import hookgate as hg
from gateway.api.schema import langflow as lf
from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import Receiver
from tests import needs
from tests.integration.helpers import finished_run

openapi_spec_validator = needs.module("openapi_spec_validator")


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route but HEAD twins and the ``/inspect`` pages."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if not path.startswith("/inspect"):
            found.add((route.method.lower(), path))
    return found


async def test_every_registered_route_is_in_the_document(gateway: Any) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    routes = api_routes(gateway.app)
    assert len(routes) > 60
    assert routes - documented == set()
    assert documented - routes == set()


async def test_the_document_is_valid_openapi_3_1(gateway: Any) -> None:
    document = await (await gateway.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    openapi_spec_validator.validate(document)


async def test_the_document_shows_auth_errors_streams_and_the_callback(gateway: Any) -> None:
    document = await (await gateway.get("/openapi.json")).json()
    paths = document["paths"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert paths["/healthz"]["get"]["security"] == []
    assert {"apiKeyHeader": []} in paths["/threads"]["post"]["security"]
    assert "403" in paths["/threads"]["post"]["responses"]
    error = paths["/threads"]["post"]["responses"]["422"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    stream = paths["/threads/{thread_id}/runs/stream"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream
    events = paths["/api/v1/build/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in events
    thread_id = paths["/threads/{thread_id}"]["get"]["parameters"][0]
    assert thread_id["schema"] == {"type": "string", "format": "uuid"}
    callback = document["webhooks"]["runCompleted"]["post"]
    headers = {p["name"] for p in callback["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "422" in document["info"]["description"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"limit": 1001}, "limit: expected 1 to 1000, got 1001"),
        ({"select": ["thread_id", "bogus"]}, "select[1]: expected one of thread_id"),
        ({"ids": ["nope"]}, "ids[0]: must be a UUID"),
        ({"status": 3}, "status: expected one of idle, busy"),
    ],
)
async def test_a_refusal_names_the_field(gateway: Any, body: dict[str, Any], named: str) -> None:
    response = await gateway.post("/threads/search", json=body)
    assert response.status == 422
    assert named in (await response.json())["detail"]


async def test_the_document_and_docs_need_no_api_key(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(api_key="key-1")))
    assert (await client.get("/threads/search")).status in (403, 405)
    assert (await client.get("/openapi.json")).status == 200
    page = await client.get("/docs")
    assert page.status == 200
    text = await page.text()
    assert 'src="docs/swagger-ui-bundle.js"' in text
    assert "//" not in text.replace("<!doctype", "")  # no asset from another host
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status == 200
    assert bundle.content_type == "text/javascript"
    assert len(await bundle.read()) > 100_000
    assert (await client.get("/docs/init.js")).status == 200
    assert (await client.get("/docs/../settings")).status in (403, 404)
    missing = await client.get("/docs/nothing.js", headers={"x-api-key": "key-1"})
    assert missing.status == 404
    ErrorBody.model_validate(await missing.json())


def conforms(model: Any, value: Any) -> None:
    """``value`` (a JSON answer) is what ``model`` documents, fields and types."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        model.model_validate_json(json.dumps(value), strict=True)
    else:
        from pydantic import TypeAdapter

        TypeAdapter(model).validate_json(json.dumps(value), strict=True)


async def test_endpoint_delivery_and_run_answers_match_their_models(
    gateway: Any, receiver: Receiver
) -> None:
    created = await gateway.post(
        "/api/v1/endpoints", json={"url": receiver.url, "event_types": ["run.success"]}
    )
    assert created.status == 201
    endpoint = await created.json()
    conforms(hg.Endpoint, endpoint)
    conforms(list[hg.Endpoint], await (await gateway.get("/api/v1/endpoints")).json())
    endpoint_path = f"/api/v1/endpoints/{endpoint['endpoint_id']}"
    for method, path in (("POST", "/pause"), ("POST", "/resume"), ("POST", "/rotate-secret")):
        response = await gateway.request(method, endpoint_path + path, json={})
        assert response.status == 200, await response.text()
        conforms(hg.Endpoint, await response.json())
    patched = await gateway.patch(endpoint_path, json={"description": "d", "timeout": 2})
    conforms(hg.Endpoint, await patched.json())

    accepted = await gateway.post("/api/v1/webhook/echo", json={"n": 1})
    assert accepted.status == 202
    body = await accepted.json()
    conforms(lf.WebhookAccepted, body)
    run = await finished_run(gateway, body["run_id"])
    conforms(hg.RunView, run)
    [callback] = await receiver.wait_for(1)
    conforms(hg.RunCallback, json.loads(callback.body))
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= {
        name.lower() for name in callback.headers
    }

    deliveries = await (await gateway.get(f"/api/v1/deliveries?run_id={run['run_id']}")).json()
    conforms(list[hg.Delivery], deliveries)
    delivery_path = f"/api/v1/deliveries/{deliveries[0]['delivery_id']}"
    conforms(hg.DeliveryDetail, await (await gateway.get(delivery_path)).json())
    retried = await gateway.post(delivery_path + "/retry")
    assert retried.status == 202
    conforms(hg.Delivery, await retried.json())
    recovered = await gateway.post(endpoint_path + "/recover", json={})
    conforms(hg.EndpointReplayed, await recovered.json())
    redelivered = await gateway.post(f"/api/v1/runs/{run['run_id']}/redeliver")
    conforms(hg.RunReplayed, await redelivered.json())
    secret = await gateway.get("/api/v1/webhook-secret", params={"url": receiver.url})
    conforms(hg.WebhookSecret, await secret.json())
    conforms(hg.Health, await (await gateway.get("/healthz")).json())


async def test_langflow_answers_match_their_models(gateway: Any) -> None:
    ran = await gateway.post("/api/v1/run/chat", json={"input_value": "hi"})
    assert ran.status == 200, await ran.text()
    conforms(lf.RunResponse, await ran.json())
    advanced = await gateway.post("/api/v1/run/advanced/chat", json={})
    assert advanced.status == 200, await advanced.text()
    conforms(lf.RunResponse, await advanced.json())
    built = await gateway.post("/api/v1/build/chat/flow", json={})
    assert built.status == 200
    job = await built.json()
    conforms(lf.JobStarted, job)
    cancelled = await gateway.post(f"/api/v1/build/{job['job_id']}/cancel")
    conforms(lf.BuildCancelled, await cancelled.json())
    refused = await gateway.post("/api/v1/run/chat", json={"input_type": "bogus"})
    assert refused.status == 422
    conforms(ErrorBody, await refused.json())
