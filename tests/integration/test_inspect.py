"""/inspect without a browser: escaping, secrets, access, CSRF, bins, search, the live feed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway import keys, signing
from gateway.app import create_app
from gateway.cli import banner
from gateway.settings import Settings
from gateway.testing import eventually
from tests.integration.helpers import finished_run

Client = TestClient[web.Request, web.Application]
HOSTILE = "<script>alert('pwned')</script>"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


async def test_pages_escape_hostile_trigger_content(gateway: Client) -> None:
    response = await gateway.post(
        "/api/v1/webhook/echo",
        json={"comment": HOSTILE},
        headers={"X-Evil": '"><img src=x onerror=alert(1)>'},
    )
    run_id = (await response.json())["run_id"]
    await finished_run(gateway, run_id)
    run = await (await gateway.get(f"/api/v1/runs/{run_id}")).json()
    trigger_id = run["metadata"]["trigger_id"]
    for path in (
        "/inspect/",
        "/inspect/triggers",
        f"/inspect/triggers/{trigger_id}",
        f"/inspect/runs/{run_id}",
        "/inspect/search?q=script",
    ):
        html = await page(gateway, path)
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
    detail = await page(gateway, f"/inspect/triggers/{trigger_id}")
    assert "&lt;script&gt;alert(" in detail  # shown, as text
    assert "curl -X POST" in detail


async def test_pages_carry_a_strict_content_security_policy(gateway: Client) -> None:
    response = await gateway.get("/inspect/")
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self'
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_secrets_never_appear_in_html(gateway: Client, receiver: Any) -> None:
    created = await (
        await gateway.post("/api/v1/endpoints", json={"url": receiver.url, "description": "svc"})
    ).json()
    secret = created["secret"]
    response = await gateway.post(
        "/api/v1/webhook/echo",
        json={"x": 1},
        headers={"Authorization": "Bearer top-secret-bearer-value"},
    )
    await finished_run(gateway, (await response.json())["run_id"])
    await receiver.wait_for(1)
    signing_secret = gateway.app[keys.dispatcher_key].signing_secret
    bins = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    pages = [
        "/inspect/",
        "/inspect/endpoints",
        f"/inspect/endpoints/{created['endpoint_id']}",
        "/inspect/triggers",
        "/inspect/deliveries",
        f"/inspect/bins/{bins[0].bin_id}/view",
    ]
    triggers = await gateway.app[keys.store_key].list_triggers(  # type: ignore[attr-defined]
        __import__("gateway.store.base", fromlist=["TriggerSelection"]).TriggerSelection()
    )
    pages.append(f"/inspect/triggers/{triggers[0].trigger_id}")
    for path in pages:
        html = await page(gateway, path)
        for value in (
            secret,
            secret[6:],
            signing_secret,
            signing_secret[6:],
            "top-secret-bearer-value",
        ):
            assert value not in html, f"{path} shows a secret"


async def test_the_secret_is_only_handed_to_the_copy_button_with_a_csrf_token(
    gateway: Client, receiver: Any
) -> None:
    created = await (await gateway.post("/api/v1/endpoints", json={"url": receiver.url})).json()
    html = await page(gateway, f"/inspect/endpoints/{created['endpoint_id']}")
    path = f"/inspect/endpoints/{created['endpoint_id']}/secret"
    assert (await gateway.post(path)).status == 403
    response = await gateway.post(path, headers={"X-CSRF-Token": csrf_of(html)})
    assert (await response.json())["secret"] == created["secret"]


async def test_actions_without_a_csrf_token_are_refused(gateway: Client) -> None:
    html = await page(gateway, "/inspect/bins")
    before = len(await gateway.app[keys.store_key].list_bins())  # type: ignore[attr-defined]
    refused = await gateway.post("/inspect/bins", data={"name": "sneaky"})
    assert refused.status == 403
    assert "CSRF" in await refused.text()
    wrong = await gateway.post("/inspect/bins", data={"name": "x", "csrf_token": "forged"})
    assert wrong.status == 403
    cross_site = await gateway.post(
        "/inspect/bins",
        data={"name": "x", "csrf_token": csrf_of(html)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status == 403
    assert len(await gateway.app[keys.store_key].list_bins()) == before  # type: ignore[attr-defined]
    accepted = await gateway.post(
        "/inspect/bins", data={"name": "mine", "csrf_token": csrf_of(html)}, allow_redirects=False
    )
    assert accepted.status == 303
    assert len(await gateway.app[keys.store_key].list_bins()) == before + 1  # type: ignore[attr-defined]


@pytest.fixture
async def locked(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Client:
    client: Client = await aiohttp_client(create_app(make_settings(api_key="the-api-key-123")))
    return client


async def test_with_an_api_key_unauthenticated_requests_are_refused(locked: Client) -> None:
    response = await locked.get("/inspect/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/inspect/login")
    for path in ("/inspect/runs", "/inspect/endpoints", "/inspect/bins"):
        response = await locked.get(path, allow_redirects=False)
        assert response.status == 303, path
    assert (await locked.get("/inspect/live")).status == 401
    assert (await locked.post("/inspect/bins")).status in (401, 403)
    # the API itself still wants the key: /inspect's exemption covers only /inspect routes
    assert (await locked.get("/api/v1/endpoints")).status == 403
    assert (await locked.get("/inspect/../api/v1/endpoints")).status in (403, 404)


async def test_logging_in_with_the_api_key_opens_the_pages(locked: Client) -> None:
    form = await page(locked, "/inspect/login?next=/inspect/runs")
    wrong = await locked.post(
        "/inspect/login",
        data={"api_key": "nope", "csrf_token": csrf_of(form), "next": "/inspect/runs"},
    )
    assert wrong.status == 401
    assert "the-api-key-123" not in await wrong.text()
    response = await locked.post(
        "/inspect/login",
        data={"api_key": "the-api-key-123", "csrf_token": csrf_of(form), "next": "/inspect/runs"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/inspect/runs"
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert "the-api-key-123" not in response.headers["Set-Cookie"]
    html = await page(locked, "/inspect/runs")
    assert "Log out" in html
    # a script may send the key instead of a cookie
    locked.session.cookie_jar.clear()
    scripted = await locked.get("/inspect/runs", headers={"x-api-key": "the-api-key-123"})
    assert scripted.status == 200


async def test_login_never_redirects_off_site(locked: Client) -> None:
    form = await page(locked, "/inspect/login")
    response = await locked.post(
        "/inspect/login",
        data={"api_key": "the-api-key-123", "csrf_token": csrf_of(form), "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/inspect"


async def test_a_non_loopback_gateway_without_api_key_refuses_inspect(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client: Client = await aiohttp_client(create_app(make_settings(host="0.0.0.0")))
    response = await client.get("/inspect/")
    assert response.status == 403
    assert "GATEWAY_API_KEY" in await response.text()


async def test_a_bin_keeps_its_newest_captures_as_configured(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client: Client = await aiohttp_client(create_app(make_settings(bin_keep_captures=3)))
    store = client.app[keys.store_key]
    (default,) = await store.list_bins()  # type: ignore[attr-defined]
    for n in range(5):
        assert (await client.post(f"/inspect/bins/{default.bin_id}", data=f"n={n}")).status == 200
    captures = await store.list_captures(default.bin_id)  # type: ignore[attr-defined]
    assert [c.body for c in captures] == [b"n=4", b"n=3", b"n=2"]


async def test_a_bin_records_any_method_and_answers_as_told(gateway: Client) -> None:
    store = gateway.app[keys.store_key]
    (default,) = await store.list_bins()  # type: ignore[attr-defined]
    url = f"/inspect/bins/{default.bin_id}"
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = await gateway.request(method, url + "?a=1", data=b"\x00\xffbinary")
        assert response.status == 200
    await store.update_bin(default.bin_id, {"reply_status": 503})  # type: ignore[attr-defined]
    response = await gateway.post(url, json={"needle": "haystack-42"}, headers={"Cookie": "s=v"})
    assert response.status == 503
    captures = await store.list_captures(default.bin_id)  # type: ignore[attr-defined]
    assert [c.method for c in captures] == ["POST", "PATCH", "DELETE", "PUT", "GET"]
    assert captures[0].headers["Cookie"] != "s=v"  # masked
    assert captures[1].body == b"\x00\xffbinary"
    html = await page(gateway, f"{url}/view")
    assert "binary, as hex" in html
    found = await page(gateway, f"{url}/view?q=haystack-42")
    assert found.count('class="capture"') == 1
    assert (await gateway.post("/inspect/bins/nope")).status == 404


async def test_search_finds_bodies_ids_and_captures(gateway: Client) -> None:
    response = await gateway.post("/api/v1/webhook/echo", json={"order": "ZX-998877"})
    run_id = (await response.json())["run_id"]
    await finished_run(gateway, run_id)
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    await gateway.post(f"/inspect/bins/{default.bin_id}", data="zx-998877 in a bin")
    html = await page(gateway, "/inspect/search?q=ZX-998877")
    assert run_id in html  # the trigger's row links its run
    assert "in a bin" not in html  # listed, not dumped
    assert f"/inspect/bins/{default.bin_id}/view#capture-" in html
    assert run_id in await page(gateway, f"/inspect/runs?q={run_id[-8:]}")
    assert run_id not in await page(gateway, "/inspect/runs?status=error")


async def test_a_signed_callback_to_a_bin_is_verified(gateway: Client) -> None:
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    bin_url = str(gateway.make_url(f"/inspect/bins/{default.bin_id}"))
    response = await gateway.post(
        "/api/v1/webhook/echo", params={"webhook": bin_url}, json={"k": 1}
    )
    await finished_run(gateway, (await response.json())["run_id"])

    async def captured() -> list[Any]:
        return await gateway.app[keys.store_key].list_captures(default.bin_id)  # type: ignore[attr-defined,no-any-return]

    await eventually(captured)
    html = await page(gateway, f"/inspect/bins/{default.bin_id}/view")
    assert 'data-verdict="ok"' in html
    # checked against another secret, the same request fails, and says so
    other = signing.new_secret()
    created = await (
        await gateway.post(
            "/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "secret": other}
        )
    ).json()
    form_html = await page(gateway, f"/inspect/bins/{default.bin_id}/view")
    await gateway.post(
        f"/inspect/bins/{default.bin_id}/settings",
        data={
            "verify_with": f"endpoint:{created['endpoint_id']}",
            "csrf_token": csrf_of(form_html),
        },
    )
    html = await page(gateway, f"/inspect/bins/{default.bin_id}/view")
    assert 'data-verdict="bad"' in html
    assert "bad signature" in html
    assert other not in html


async def test_the_live_feed_announces_runs(gateway: Client) -> None:
    async with gateway.get("/inspect/live") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
        await gateway.post("/api/v1/webhook/echo", json={"x": 1})
        seen = b""
        async with asyncio.timeout(10):
            while b'"kind":"run_end"' not in seen:
                seen += await stream.content.readuntil(b"\n\n")
    assert b'"kind":"trigger"' in seen


async def test_serve_prints_a_ready_bin_url(gateway: Client) -> None:
    text = banner(gateway.app, "http://127.0.0.1:8080")
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    assert f"http://127.0.0.1:8080/inspect/bins/{default.bin_id}" in text
    assert (await gateway.post(f"/inspect/bins/{default.bin_id}", data="hi")).status == 200


@pytest.mark.parametrize(
    ("status", "delay"), [("²", ""), ("٥٠٣", ""), ("99", ""), ("abc", ""), ("", "nan"), ("", "1e9")]
)
async def test_bad_bin_settings_are_refused_and_change_nothing(
    gateway: Client, status: str, delay: str
) -> None:
    store = gateway.app[keys.store_key]
    (default,) = await store.list_bins()  # type: ignore[attr-defined]
    form_html = await page(gateway, f"/inspect/bins/{default.bin_id}/view")
    response = await gateway.post(
        f"/inspect/bins/{default.bin_id}/settings",
        data={"reply_status": status, "reply_delay": delay, "csrf_token": csrf_of(form_html)},
        allow_redirects=False,
    )
    assert response.status == 303  # back to the bin page, saying what is wrong
    assert "problem=" in response.headers["Location"]
    (after,) = await store.list_bins()  # type: ignore[attr-defined]
    assert (after.reply_status, after.reply_delay) == (default.reply_status, default.reply_delay)
