"""Another site's page, through its visitor's browser, can neither read nor change hookgate.

Each test plays the browser's part over real HTTP: a rebound ``Host``, a simple (no-preflight)
write with a ``text/plain``, form or multipart body, a foreign ``Origin`` or
``Sec-Fetch-Site``, and checks the answer and that nothing was stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway import keys, verify
from gateway.app import create_app
from gateway.settings import Settings
from tests.integration.helpers import count_rows

Client = TestClient[web.Request, web.Application]
FOREIGN_HOSTS = (
    "evil.example",
    "evil.example:8080",
    "EVIL.example",
    "127.0.0.1.evil.example",
    "localhost.evil.example:80",
    "[::1].evil.example",
    "localhost@evil.example",
    "0x7f.1",
    "",
)
LOOPBACK_HOSTS = (
    "localhost",
    "localhost:8080",
    "LOCALHOST.",
    "127.0.0.1:1",
    "127.0.0.2",
    "[::1]:80",
)
FOREIGN_ORIGINS = ("https://evil.example", "null", "http://localhost:1", "http://127.0.0.1")
FOREIGN = {"Origin": "https://evil.example"}
TABLES = ("triggers", "runs", "endpoints", "threads", "deliveries")


def own_origin(client: Client) -> str:
    return str(client.make_url("/").origin())


def stored(settings: Settings) -> dict[str, int]:
    return {table: count_rows(settings, table) for table in TABLES}


def text_plain(body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"data": body, "headers": {"Content-Type": "text/plain", **(headers or {})}}


def form(body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"data": {"json": body}, "headers": headers or {}}


def multipart(body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    data = aiohttp.FormData()
    data.add_field("json", body.encode(), filename="x.json", content_type="application/json")
    return {"data": data, "headers": headers or {}}


SIMPLE_BODIES = {"text/plain": text_plain, "form": form, "multipart": multipart}


async def refused(response: aiohttp.ClientResponse, status: int) -> str:
    body = await response.json()
    assert response.status == status, body
    detail = body["detail"]
    assert isinstance(detail, str)
    assert detail
    return detail


# Host: a name rebound to 127.0.0.1 reads nothing


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_a_loopback_gateway_refuses_foreign_host_names(
    gateway: Client, settings: Settings, host: str
) -> None:
    for method, path in (
        ("GET", "/inspect/"),
        ("GET", "/inspect/bins"),
        ("GET", "/api/v1/endpoints"),
        ("GET", "/healthz"),
        ("POST", "/api/v1/webhook/echo"),
    ):
        response = await gateway.request(
            method, path, headers={"Host": host}, json={"k": 1}, allow_redirects=False
        )
        detail = await refused(response, 421)
        assert "allowed_hosts" in detail
        assert "csrf_token" not in detail
    assert stored(settings)["triggers"] == 0


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_a_loopback_gateway_answers_to_its_loopback_names(gateway: Client, host: str) -> None:
    assert (await gateway.get("/inspect/", headers={"Host": host})).status == 200
    assert (await gateway.get("/api/v1/endpoints", headers={"Host": host})).status == 200


async def test_allowed_hosts_adds_names_and_star_serves_any(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    named: Client = await aiohttp_client(
        create_app(make_settings(allowed_hosts=("Hooks.Example.com.",)))
    )
    assert (await named.get("/healthz", headers={"Host": "hooks.example.com:443"})).status == 200
    assert (await named.get("/healthz", headers={"Host": "localhost"})).status == 200
    await refused(await named.get("/healthz", headers={"Host": "evil.example"}), 421)
    anything: Client = await aiohttp_client(create_app(make_settings(allowed_hosts=("*",))))
    assert (await anything.get("/healthz", headers={"Host": "evil.example"})).status == 200


async def test_a_non_loopback_gateway_serves_any_name_unless_told_otherwise(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    key = {"x-api-key": "the-api-key-123"}
    open_names: Client = await aiohttp_client(
        create_app(make_settings(host="0.0.0.0", api_key="the-api-key-123"))
    )
    response = await open_names.get("/api/v1/endpoints", headers={"Host": "10.1.2.3:8080", **key})
    assert response.status == 200
    listed: Client = await aiohttp_client(
        create_app(
            make_settings(
                host="0.0.0.0", api_key="the-api-key-123", allowed_hosts=("hooks.example.com",)
            )
        )
    )
    ok = await listed.get("/api/v1/endpoints", headers={"Host": "hooks.example.com", **key})
    assert ok.status == 200
    await refused(await listed.get("/api/v1/endpoints", headers={"Host": "10.1.2.3", **key}), 421)


# Content type: a write a page can send without asking first is not taken as JSON


@pytest.mark.parametrize("kind", SIMPLE_BODIES)
async def test_simple_writes_to_the_json_api_change_nothing(
    gateway: Client, settings: Settings, kind: str
) -> None:
    simple = SIMPLE_BODIES[kind]
    created = await gateway.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"})
    endpoint = await created.json()
    thread = await (await gateway.post("/threads", json={})).json()
    before = stored(settings)
    writes = (
        ("POST", "/api/v1/endpoints", '{"url": "http://127.0.0.1:9/other"}'),
        ("POST", f"/api/v1/endpoints/{endpoint['endpoint_id']}/rotate-secret", "{}"),
        ("PATCH", f"/api/v1/endpoints/{endpoint['endpoint_id']}", '{"enabled": false}'),
        ("POST", "/runs", '{"assistant_id": "echo", "input": {}}'),
        ("POST", f"/threads/{thread['thread_id']}/runs", '{"assistant_id": "echo"}'),
        ("POST", "/threads", "{}"),
        ("PATCH", f"/threads/{thread['thread_id']}", '{"metadata": {"a": 1}}'),
        ("POST", "/api/v1/run/echo", '{"input_value": "hi"}'),
    )
    for method, path, body in writes:
        response = await gateway.request(method, path, **simple(body))
        assert "application/json" in await refused(response, 415), path
        cross = await gateway.request(method, path, **simple(body, FOREIGN))
        assert "another origin" in await refused(cross, 403), path
    assert stored(settings) == before
    current = await gateway.app[keys.store_key].get_endpoint(endpoint["endpoint_id"])
    assert current is not None
    assert (current.secret, current.enabled) == (endpoint["secret"], True)
    # the same writes as JSON go through
    rotated = await gateway.post(f"/api/v1/endpoints/{endpoint['endpoint_id']}/rotate-secret")
    assert rotated.status == 200
    assert (await gateway.post("/threads", json={})).status == 200


async def test_bodyless_writes_need_no_type_but_not_a_simple_one(gateway: Client) -> None:
    created = await (
        await gateway.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"})
    ).json()
    pause = f"/api/v1/endpoints/{created['endpoint_id']}/pause"
    untyped = await gateway.post(pause, skip_auto_headers=["Content-Type"])
    assert untyped.status == 200, await untyped.text()
    await refused(await gateway.post(pause, headers={"Content-Type": "text/plain"}), 415)
    await refused(
        await gateway.post("/threads", data=b"{}", skip_auto_headers=["Content-Type"]), 415
    )


async def test_a_non_simple_header_vouches_for_a_script(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    keyed: Client = await aiohttp_client(create_app(make_settings(api_key="the-api-key-123")))
    response = await keyed.post(
        "/api/v1/endpoints",
        data='{"url": "http://127.0.0.1:9/hook"}',
        headers={"x-api-key": "the-api-key-123", "Content-Type": "text/plain"},
    )
    assert response.status == 201
    query_key = await keyed.post(
        "/api/v1/endpoints?x-api-key=the-api-key-123", **text_plain('{"url": "http://x.test/"}')
    )
    await refused(query_key, 415)


# Webhooks take any body, but not from another site's page


@pytest.mark.parametrize("path", ["/api/v1/webhook/echo", "/webhook/echo"])
@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_cross_site_form_cannot_trigger_a_flow(
    gateway: Client, settings: Settings, path: str, browser: dict[str, str]
) -> None:
    for kind in SIMPLE_BODIES.values():
        response = await gateway.post(path, **kind('{"hello": "world"}', browser))
        assert "another origin" in await refused(response, 403)
    assert stored(settings)["triggers"] == stored(settings)["runs"] == 0
    # a sender that is not a browser page (GitHub, curl) posts forms as it always did
    accepted = await gateway.post(path, data={"event": "push"})
    assert accepted.status == 202
    same_origin = await gateway.post(
        path, data={"event": "push"}, headers={"Origin": own_origin(gateway)}
    )
    assert same_origin.status == 202


async def test_a_webhook_that_proves_its_sender_may_come_from_another_site(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(api_key="the-api-key-123")
    keyed: Client = await aiohttp_client(create_app(settings))
    foreign = {"Origin": "https://shop.example"}
    token = verify.trigger_token(settings.signing_secret, "echo", 4_000_000_000.0)
    by_token = await keyed.post(
        f"/webhook/echo?token={token}", data={"order": "1"}, headers=foreign
    )
    assert by_token.status == 202
    by_key = await keyed.post(
        "/webhook/echo?x-api-key=the-api-key-123", data={"order": "2"}, headers=foreign
    )
    assert by_key.status == 202
    forged = await keyed.post("/webhook/echo?token=forged", data={"order": "3"}, headers=foreign)
    assert forged.status == 403
    assert count_rows(settings, "triggers") == 2


# Origin: every state-changing request, API and /inspect alike


async def test_foreign_origins_cannot_change_anything(gateway: Client, settings: Settings) -> None:
    created = await gateway.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"})
    endpoint_id = (await created.json())["endpoint_id"]
    html = await (await gateway.get("/inspect/bins")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf
    before = stored(settings)
    bins_before = len(await gateway.app[keys.store_key].list_bins())  # type: ignore[attr-defined]
    for origin in FOREIGN_ORIGINS:
        for headers in ({"Origin": origin}, {"Sec-Fetch-Site": "same-site"}):
            for method, path, body in (
                ("POST", "/api/v1/endpoints", {"url": "http://127.0.0.1:9/x"}),
                ("POST", f"/api/v1/endpoints/{endpoint_id}/rotate-secret", {}),
                ("DELETE", f"/api/v1/endpoints/{endpoint_id}", None),
                ("POST", "/threads", {}),
                ("POST", "/runs", {"assistant_id": "echo", "input": {}}),
                ("POST", "/api/v1/webhook/echo", {"k": 1}),
            ):
                response = await gateway.request(method, path, json=body, headers=headers)
                await refused(response, 403)
            inspect_action = await gateway.post(
                "/inspect/bins",
                data={"name": "x", "csrf_token": csrf.group(1)},
                headers=headers,
                allow_redirects=False,
            )
            await refused(inspect_action, 403)
    assert stored(settings) == before
    assert len(await gateway.app[keys.store_key].list_bins()) == bins_before  # type: ignore[attr-defined]
    same = {"Origin": own_origin(gateway), "Sec-Fetch-Site": "same-origin"}
    allowed = await gateway.post(
        "/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x"}, headers=same
    )
    assert allowed.status == 201
    pressed = await gateway.post(
        "/inspect/bins",
        data={"name": "mine", "csrf_token": csrf.group(1)},
        headers=same,
        allow_redirects=False,
    )
    assert pressed.status == 303


async def test_a_bin_records_posts_from_any_site(gateway: Client) -> None:
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    response = await gateway.post(
        f"/inspect/bins/{default.bin_id}",
        data="beacon",
        headers={"Origin": "https://app.example", "Content-Type": "text/plain"},
    )
    assert response.status == 200
