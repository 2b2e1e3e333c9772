"""Secret-bearing inbound headers are masked by name pattern wherever a trigger is stored or shown."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway import keys, log
from gateway.settings import Settings
from tests.database import raw
from tests.integration.helpers import finished_run

Client = TestClient[web.Request, web.Application]

SECRET_HEADERS = {
    "X-Gitlab-Token": "s3cr3t-gitlab-token-value",
    "X-Custom-Secret": "s3cr3t-custom-secret-value",
    "X-Hub-Signature-256": "sha256=s3cr3t-signature-value",
    "Private-Key": "s3cr3t-private-key-value",
    "X-Authorization-Extra": "s3cr3t-auth-value",
    "X-Db-PASSWORD": "s3cr3t-password-value",
}
PLAIN_HEADERS = {"X-Team": "docs-team", "X-Request-Source": "ci-pipeline"}


async def trigger_page(gateway: Client, run_id: str) -> tuple[str, str]:
    await finished_run(gateway, run_id)
    run = await (await gateway.get(f"/api/v1/runs/{run_id}")).json()
    trigger_id = run["metadata"]["trigger_id"]
    response = await gateway.get(f"/inspect/triggers/{trigger_id}")
    assert response.status == 200
    return trigger_id, await response.text()


async def stored_trigger_headers(settings: Settings, trigger_id: str) -> str:
    [(headers, query)] = await raw(
        settings.database_url,
        "SELECT headers, query FROM triggers WHERE trigger_id = ?",
        trigger_id,
    )
    return f"{headers}{query}"


async def test_secret_headers_are_masked_on_the_trigger_page_in_curl_and_at_rest(
    gateway: Client, settings: Settings
) -> None:
    response = await gateway.post(
        "/api/v1/webhook/echo?private_token=s3cr3t-query-token&page=2",
        json={"hello": "world"},
        headers={**SECRET_HEADERS, **PLAIN_HEADERS},
    )
    assert response.status == 202
    trigger_id, html = await trigger_page(gateway, (await response.json())["run_id"])
    curl = html.split('id="curl">', 1)[1].split("</pre>", 1)[0]
    assert "curl -X POST" in curl
    at_rest = await stored_trigger_headers(settings, trigger_id)
    for shown in (html, curl, at_rest):
        for name, value in SECRET_HEADERS.items():
            assert value not in shown, name
        assert "s3cr3t-query-token" not in shown
        for value in PLAIN_HEADERS.values():
            assert value in shown
    assert "X-Gitlab-Token: ****ue" in curl
    assert "page=2" in curl


async def test_a_trigger_stored_before_pattern_masking_is_masked_when_shown(
    gateway: Client, settings: Settings
) -> None:
    response = await gateway.post("/api/v1/webhook/echo", json={"old": True})
    run_id = (await response.json())["run_id"]
    trigger_id, _ = await trigger_page(gateway, run_id)
    await raw(
        settings.database_url,
        "UPDATE triggers SET headers = ? WHERE trigger_id = ?",
        json.dumps({"X-Gitlab-Token": "legacy-clear-token-value"}),
        trigger_id,
    )
    _, html = await trigger_page(gateway, run_id)
    assert "X-Gitlab-Token" in html
    assert "legacy-clear-token-value" not in html


async def test_a_bin_stores_secret_headers_masked_but_keeps_the_signature_it_checks(
    gateway: Client, settings: Settings
) -> None:
    bin_id = gateway.app[keys.inspect_default_bin_key].bin_id
    sent = await gateway.post(
        f"/inspect/bins/{bin_id}",
        data=b"{}",
        headers={"X-Gitlab-Token": "s3cr3t-bin-token-value", "webhook-signature": "v1,abc="},
    )
    assert sent.status < 500
    rows = await raw(settings.database_url, "SELECT headers FROM bin_requests")
    stored = " ".join(str(headers) for (headers,) in rows)
    assert "s3cr3t-bin-token-value" not in stored
    assert "v1,abc=" in stored


def test_names_are_matched_by_pattern_case_insensitively() -> None:
    headers = {
        "X-Gitlab-Token": "abcdefghijk",
        "cookie": "session=abcdefghijk",
        "X-API-KEY": "abcdefghijk",
        "Accept": "*/*",
        "webhook-signature": "v1,xyz123456",
    }
    assert log.masked_headers(headers, keep=["Webhook-Signature"]) == {
        "X-Gitlab-Token": "****jk",
        "cookie": "****jk",
        "X-API-KEY": "****jk",
        "Accept": "*/*",
        "webhook-signature": "v1,xyz123456",
    }
