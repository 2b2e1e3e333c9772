"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (Swagger UI, served from the
``swagger-ui-py`` package: no CDN, works offline).

The document is made from the app's route table and the registry of models each handler
reads and answers with (``schema.operations``), the same models the handlers validate with,
so it cannot drift from what the gateway does. ``/inspect`` (HTML pages behind their own
login) is not part of the API and is left out.
"""

from __future__ import annotations

import importlib.resources
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from gateway import errors, signing
from gateway.api.schema import PATH_PARAMS, ErrorBody, Query
from gateway.api.schema import hookgate as hg
from gateway.api.schema.operations import HTML, JSON, OPERATIONS, Answer, Operation, Selected

REF = "#/components/schemas/{model}"
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
INIT_SCRIPT = """window.onload = () => {
  window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true});
};
"""
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hookgate API</title>
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""
PUBLIC_PATHS = frozenset(
    {"/openapi.json", "/docs", "/docs/init.js", *(f"/docs/{name}" for name in ASSETS)}
)
"""Reachable without the API key, as LangGraph's server serves its document."""
DIFFERENCES = """\
hookgate speaks three APIs: its own (endpoints, deliveries, runs), Langflow's (webhook, run,
build) and LangGraph Agent Server's (assistants, threads, runs, crons). Where it differs from
its peers, on purpose:

- Bad input answers **422** with `{"detail": "<field>: <what was expected>"}` where Langflow
  would silently use its defaults, and bounds what the peers leave open: durations up to a
  year, moments between 1970 and 9999, `limit` 1..1000, `offset` up to 2^53-1, `select` only
  the listed fields. Every error is `{"detail": ...}`.
- JSON bodies are read strictly: `NaN`, `Infinity` and nesting past 128 levels are refused.
- The Langflow webhook answer adds `run_id` and a `Location` header.
- Every run's events are kept: any stream can be resumed with `Last-Event-ID`.
- Finished runs are POSTed, signed, to their `webhook` and to matching endpoints
  (see `webhooks`).

With `api_key` configured, every route but `/healthz`, `/openapi.json` and `/docs` needs it in
the `x-api-key` header or query parameter; a webhook may carry a signed trigger `token` instead.
"""


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/{asset}", docs_asset)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app), headers={"Cache-Control": "no-cache"})


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name == "init.js":
        return web.Response(text=INIT_SCRIPT, content_type="text/javascript")
    if name not in ASSETS:
        raise errors.NotFound(f"No such documentation asset: {name[:100]}")
    headers = {"Content-Type": ASSETS[name], "Cache-Control": "public, max-age=86400"}
    return web.FileResponse(_swagger_ui() / name, headers=headers)


@cache
def _swagger_ui() -> Path:
    return Path(str(importlib.resources.files("swagger_ui") / "static"))


SELF = {
    ("GET", openapi_json): Operation(
        "This document", "Documentation", (Answer(200, dict[str, Any]),), public=True
    ),
    ("GET", docs): Operation(
        "This document in Swagger UI", "Documentation", (Answer(200, None, HTML),), public=True
    ),
    ("GET", docs_asset): Operation(
        "Swagger UI's files",
        "Documentation",
        (Answer(200, None, "*/*"),),
        public=True,
        extra={"asset": [*ASSETS, "init.js"]},
    ),
}


def operation_of(method: str, handler: Any) -> Operation | None:
    return OPERATIONS.get((method, handler)) or SELF.get((method, handler))


# the document


class _Schemas:
    """Component schemas, collected as operations refer to them."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, kind: Any, mode: str) -> dict[str, Any]:
        if kind is Any:
            return {}
        if isinstance(kind, Selected):
            self.of(kind.model, mode)
            name = f"{kind.model.__name__}Fields"
            fields = dict(self.components[kind.model.__name__])
            fields.pop("required", None)
            fields["description"] = "The fields `select` names; all of them by default."
            self.components[name] = fields
            return {"type": "array", "items": {"$ref": REF.format(model=name)}}
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.components[kind.__name__] = schema
            return {"$ref": REF.format(model=kind.__name__)}
        return schema


def document(app: web.Application) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        op = operation_of(route.method, route.handler)
        if op is None or path.startswith("/inspect"):
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            path, route.method, op, schemas
        )
    schemas.of(ErrorBody, "serialization")
    return {
        "openapi": "3.1.0",
        "info": {"title": "hookgate", "version": _version(), "description": DIFFERENCES},
        "tags": [{"name": name} for name in sorted({op.tag for op in OPERATIONS.values()})],
        "paths": paths,
        "webhooks": _webhooks(schemas),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "x-api-key"},
                "triggerToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "A signed trigger URL (`hookgate token`), webhooks only.",
                },
            },
        },
    }


def _version() -> str:
    try:
        return metadata.version("hookgate")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _operation(path: str, method: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    params = _path_params(path, op) + _query_params(op.query) + _header_params(op)
    found: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": _operation_id(method, path),
        "parameters": params,
        "responses": _responses(path, method, op, schemas),
    }
    if op.description:
        found["description"] = op.description
    if op.body is not None:
        found["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_media: {"schema": schemas.of(op.body, "validation")}},
        }
    if op.public:
        found["security"] = []
    else:
        security: list[dict[str, list[str]]] = [{"apiKeyHeader": []}, {"apiKeyQuery": []}]
        if op.trigger_token:
            security.append({"triggerToken": []})
        found["security"] = security
    return found


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_")).strip("_")
    return f"{method.lower()}_{words or 'root'}"


def _path_params(path: str, op: Operation) -> list[dict[str, Any]]:
    params = []
    for name in re.findall(r"{(\w+)}", path):
        known = PATH_PARAMS.get(name)
        schema: dict[str, Any] = {"type": "string"}
        if name in op.extra:
            schema["enum"] = op.extra[name]
        elif known is not None and known.is_uuid:
            schema["format"] = "uuid"
        param = {"name": name, "in": "path", "required": True, "schema": schema}
        if known is not None and known.description:
            param["description"] = known.description
        params.append(param)
    return params


def _query_params(model: type[Query] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _header_params(op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": description,
        }
        for name, description in op.headers
    ]


ERRORS = {
    400: "The request is malformed (a body that is not JSON, where the peer API says 400).",
    401: "A signature could not be verified.",
    403: "The API key is missing or wrong, or a cross-site write was refused.",
    404: "Not found.",
    409: "The request conflicts with the current state.",
    413: "The request body is too large.",
    415: "A write without `x-api-key` must send `Content-Type: application/json`.",
    422: "A parameter or body field is invalid; `detail` names it.",
    503: "The store cannot take this request now; retry after `Retry-After`.",
}


def _responses(path: str, method: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for answer in op.answers:
        entry = responses.setdefault(
            str(answer.status), {"description": answer.description or "OK"}
        )
        if answer.description and answer.description not in entry["description"]:
            entry["description"] = f"{entry['description']} {answer.description}".strip()
        if answer.status == 204 or (answer.model is None and answer.status == 202):
            continue
        if answer.model is None:
            schema: dict[str, Any] = {} if answer.media == JSON else {"type": "string"}
        else:
            schema = schemas.of(answer.model, "serialization")
        entry.setdefault("content", {})[answer.media] = {"schema": schema}
    statuses = set(op.errors) | {422, 503}
    if not op.public:
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if method != "GET":
        statuses |= {400, 413, 415}
    for status in sorted(statuses):
        if str(status) in responses:
            continue
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {JSON: {"schema": {"$ref": REF.format(model="ErrorBody")}}},
        }
    return responses


def _webhooks(schemas: _Schemas) -> dict[str, Any]:
    headers = [
        ("webhook-id", "The delivery's id; the same on every retry: de-duplicate on it."),
        ("webhook-timestamp", "Unix seconds when this try was signed."),
        (
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` per signing secret, space-separated "
            "(Standard Webhooks; the endpoint's secret, or for a run's `webhook` the one "
            "`GET /api/v1/webhook-secret` gives).",
        ),
    ]
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": description,
        }
        for name, description in headers
    ]
    params.append(
        {
            "name": signing.TOKEN_PARAM,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "For receivers that can only read the URL: a signed token naming "
            "this delivery and its body digest (one per signing secret).",
        }
    )
    answer = {"2XX": {"description": "Received. Any other answer, or none, is retried."}}

    def hook(summary: str, model: type[BaseModel]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "description": (model.__doc__ or "").strip(),
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schemas.of(model, "serialization")}},
                },
                "responses": answer,
            }
        }

    return {
        "runCompleted": hook("A run ended (run.success, run.error, …)", hg.RunCallback),
        "endpointEvent": hook("An endpoint changed state (endpoint.*)", hg.EndpointEvent),
    }
