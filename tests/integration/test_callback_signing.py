"""Callback proofs bound to what they vouch for, over real HTTP.

Per-run callbacks are signed with their destination origin's own secret, so a signature obtained
by sending to one receiver verifies at no other; ``hookgate_token`` names the delivery and the
body's digest, is short-lived, and comes once per secret during a rotation. Receivers here
verify as the README tells them to: ``standardwebhooks`` for the headers, itsdangerous for the
token; the bins verify the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import standardwebhooks
from aiohttp.test_utils import TestClient, TestServer

from gateway import errors, keys, models, signing
from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import FakeClock, Received, Receiver, eventually
from tests.integration.helpers import finished_run
from tests.unit.test_signing import readme_receiver_accepts

Client = TestClient[Any, Any]


async def other_receiver(aiohttp_server: Callable[..., Any]) -> Receiver:
    """A second receiver on its own port: another origin."""
    recorder = Receiver()
    server: TestServer = await aiohttp_server(recorder.app(), host="127.0.0.1")
    recorder.url = str(server.make_url("/hook"))
    return recorder


async def origin_secret(gateway: Client, url: str) -> str:
    response = await gateway.get("/api/v1/webhook-secret", params={"url": url})
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["origin"] == signing.callback_origin(url)
    secret: str = answer["secret"]
    return secret


def sent_url(callback: Received) -> str:
    return "http://receiver" + callback.path_qs


async def run_with_webhook(gateway: Client, url: str, **payload: Any) -> str:
    response = await gateway.post(
        "/api/v1/webhook/echo", params={"webhook": url}, json=payload or {"n": 1}
    )
    assert response.status == 202
    run_id: str = (await response.json())["run_id"]
    return run_id


async def test_a_per_run_callback_verifies_only_with_its_origins_secret(
    gateway: Client, receiver: Receiver, aiohttp_server: Callable[..., Any]
) -> None:
    other = await other_receiver(aiohttp_server)
    run_id = await run_with_webhook(gateway, receiver.url)
    [callback] = await receiver.wait_for(1)
    mine = await origin_secret(gateway, receiver.url)
    theirs = await origin_secret(gateway, other.url)
    shared = gateway.app[keys.dispatcher_key].signing_secret
    assert len({mine, theirs, shared}) == 3

    payload = standardwebhooks.Webhook(mine).verify(callback.body, callback.headers)
    assert payload["run_id"] == run_id
    assert readme_receiver_accepts(sent_url(callback), mine, callback.headers, callback.body)
    for wrong in (theirs, shared):
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(wrong).verify(callback.body, callback.headers)
        assert not readme_receiver_accepts(
            sent_url(callback), wrong, callback.headers, callback.body
        )
    # the same origin, another path or query: the same secret
    assert await origin_secret(gateway, receiver.url.replace("/hook", "/other?x=1")) == mine


async def test_a_token_proves_nothing_about_another_body_or_delivery(
    gateway: Client, receiver: Receiver
) -> None:
    for n in (1, 2):
        await finished_run(gateway, await run_with_webhook(gateway, receiver.url, n=n))
    first, second = await receiver.wait_for(2)
    secret = await origin_secret(gateway, receiver.url)
    url = sent_url(first)
    assert readme_receiver_accepts(url, secret, first.headers, first.body)
    assert first.body != second.body
    assert not readme_receiver_accepts(url, secret, first.headers, second.body)
    assert not readme_receiver_accepts(url, secret, second.headers, first.body)
    tokens = parse_qs(urlsplit(url).query)["hookgate_token"]
    with pytest.raises(errors.Forbidden, match="the body was altered"):
        signing.check_callback_tokens(
            tokens, (secret,), first.headers["webhook-id"], second.body, first_time(first)
        )
    with pytest.raises(errors.Forbidden, match="but webhook-id is"):
        signing.check_callback_tokens(
            tokens, (secret,), second.headers["webhook-id"], first.body, first_time(first)
        )


def first_time(callback: Received) -> float:
    return float(callback.headers["webhook-timestamp"])


async def test_during_a_rotation_the_token_verifies_with_either_secret(
    gateway: Client, receiver: Receiver
) -> None:
    created = await gateway.post("/api/v1/endpoints", json={"url": receiver.url})
    hook = await created.json()
    rotated = await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/rotate-secret")
    new_secret = (await rotated.json())["secret"]
    await gateway.post("/api/v1/webhook/echo", json={"n": 1})
    [callback] = await receiver.wait_for(1)
    assert len(parse_qs(urlsplit(callback.path_qs).query)["hookgate_token"]) == 2
    for secret in (hook["secret"], new_secret):
        standardwebhooks.Webhook(secret).verify(callback.body, callback.headers)
        assert readme_receiver_accepts(sent_url(callback), secret, callback.headers, callback.body)


async def test_the_secret_route_refuses_what_is_not_a_receiver_url(gateway: Client) -> None:
    for params in ({}, {"url": ""}, {"url": "ftp://x.example/"}, {"url": "http://h:99999/"}):
        response = await gateway.get("/api/v1/webhook-secret", params=params)
        assert response.status == 422, params
        assert (await response.json())["detail"].startswith("url: ")


async def test_the_secret_route_needs_the_api_key(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client: Client = await aiohttp_client(create_app(make_settings(api_key="key-1")))
    params = {"url": "https://receiver.example/hook"}
    assert (await client.get("/api/v1/webhook-secret", params=params)).status == 403
    allowed = await client.get(
        "/api/v1/webhook-secret", params=params, headers={"x-api-key": "key-1"}
    )
    assert allowed.status == 200


# bins


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def on_fake_clock(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> Client:
    client: Client = await aiohttp_client(create_app(settings, clock=clock))
    return client


def captures_of(gateway: Client) -> Callable[[str], Any]:
    async def captures(bin_id: str) -> list[models.CapturedRequest]:
        found: list[models.CapturedRequest] = await gateway.app[keys.store_key].list_captures(  # type: ignore[attr-defined]
            bin_id
        )
        return found

    return captures


async def verdict(gateway: Client, bin_id: str, capture_id: int) -> str:
    """The bin page's badge and check reasons for one captured request."""
    response = await gateway.get(f"/inspect/bins/{bin_id}/view")
    html = await response.text()
    assert response.status == 200, html[:300]
    start = html.index(f'id="capture-{capture_id}"')
    return html[start : html.index("</details>", start)]


async def resend(
    gateway: Client, bin_id: str, captured: models.CapturedRequest, **changes: Any
) -> models.CapturedRequest:
    """Send a captured callback to the bin again, as someone who copied it would: its query
    (the tokens) with ``query`` replacing it, its id and timestamp headers, and ``body``; no
    signature header, so the token alone decides."""
    query = changes.get("query", captured.query)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": changes.get("webhook_id", captured.headers["webhook-id"]),
        "webhook-timestamp": captured.headers["webhook-timestamp"],
    }
    body = changes.get("body", captured.body)
    response = await gateway.post(f"/inspect/bins/{bin_id}?{query}", data=body, headers=headers)
    assert response.status == 200
    capture_id = (await response.json())["captured"]
    [stored] = [c for c in await captures_of(gateway)(bin_id) if c.capture_id == capture_id]
    return stored


async def first_capture(gateway: Client, bin_id: str) -> models.CapturedRequest:
    async def one() -> models.CapturedRequest | None:
        found = await captures_of(gateway)(bin_id)
        return found[0] if found else None

    captured: models.CapturedRequest = await eventually(one)
    return captured


async def test_a_bin_refuses_a_copied_token_with_a_forged_body_or_id_or_too_late(
    on_fake_clock: Client, clock: FakeClock
) -> None:
    gateway = on_fake_clock
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    bin_url = str(gateway.make_url(f"/inspect/bins/{default.bin_id}"))
    await finished_run(gateway, await run_with_webhook(gateway, bin_url, n=1))
    sent = await first_capture(gateway, default.bin_id)
    shown = await verdict(gateway, default.bin_id, sent.capture_id)
    assert 'data-verdict="ok"' in shown
    assert "per-run webhook secret of http://127.0.0.1:" in shown
    page = await (await gateway.get(f"/inspect/bins/{default.bin_id}/view")).text()
    assert (await origin_secret(gateway, bin_url))[6:] not in page

    copied = await resend(gateway, default.bin_id, sent)
    assert 'data-verdict="ok"' in await verdict(gateway, default.bin_id, copied.capture_id)

    forged = await resend(gateway, default.bin_id, sent, body=b'{"values": "forged"}')
    shown = await verdict(gateway, default.bin_id, forged.capture_id)
    assert 'data-verdict="bad"' in shown
    assert "the body was altered" in shown

    other_id = await resend(gateway, default.bin_id, sent, webhook_id="another-delivery")
    shown = await verdict(gateway, default.bin_id, other_id.capture_id)
    assert 'data-verdict="bad"' in shown
    assert "but webhook-id is another-delivery" in shown

    clock.advance(signing.TOKEN_MAX_AGE + 1)
    late = await resend(gateway, default.bin_id, sent)
    shown = await verdict(gateway, default.bin_id, late.capture_id)
    assert 'data-verdict="bad"' in shown
    assert re.search(r"signed \d+ s before it arrived", shown)


async def test_a_bin_checks_the_token_with_both_secrets_during_a_rotation(
    gateway: Client,
) -> None:
    (default,) = await gateway.app[keys.store_key].list_bins()  # type: ignore[attr-defined]
    bin_url = str(gateway.make_url(f"/inspect/bins/{default.bin_id}"))
    hook = await (await gateway.post("/api/v1/endpoints", json={"url": bin_url})).json()
    await gateway.post(f"/api/v1/endpoints/{hook['endpoint_id']}/rotate-secret")
    await finished_run(
        gateway, (await (await gateway.post("/api/v1/webhook/echo", json={})).json())["run_id"]
    )
    sent = await first_capture(gateway, default.bin_id)
    assert 'data-verdict="ok"' in await verdict(gateway, default.bin_id, sent.capture_id)
    current, previous = parse_qs(sent.query)["hookgate_token"]
    for token in (current, previous):
        alone = await resend(
            gateway, default.bin_id, sent, query=urlencode({"hookgate_token": token})
        )
        assert 'data-verdict="ok"' in await verdict(gateway, default.bin_id, alone.capture_id)
