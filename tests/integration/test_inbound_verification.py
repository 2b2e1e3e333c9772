"""Inbound verification, signed trigger URLs and the dedup window, on the real app and store.

The app runs on a ``FakeClock``: signatures carry its time, so a verifier reading the system
clock instead would reject them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

from gateway import keys, verify
from gateway.app import create_app
from gateway.settings import FlowSettings, Settings
from gateway.store import backend_of
from gateway.store.sqlite import MIGRATIONS, path_from_url
from gateway.testing import FakeClock, eventually
from tests.integration.helpers import count_rows, finished_run, insertion_order, query_rows

BODY = b'{"ref": "refs/heads/main", "commits": 2}'


@dataclasses.dataclass(frozen=True)
class Provider:
    scheme: str
    secret: str
    signature_header: str
    sign: Callable[[str, bytes, int], dict[str, str]]
    timed: bool = True


def github(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def stripe_signed(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)
    return {"Stripe-Signature": header}


def standard(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    msg_id = f"msg_{timestamp}"
    when = datetime.fromtimestamp(timestamp, UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
    }


def slack(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(timestamp)}


PROVIDERS = {
    "github": Provider("github", "gh-secret-123", "X-Hub-Signature-256", github, timed=False),
    "stripe": Provider("stripe", "whsec_stripe_secret_abc", "Stripe-Signature", stripe_signed),
    "standard": Provider(
        "standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook-signature", standard
    ),
    "slack": Provider("slack", "slack-signing-secret-xyz", "X-Slack-Signature", slack),
}
WRONG_SECRETS = {
    "github": "not-the-secret",
    "stripe": "whsec_stripe_other",
    "standard": "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    "slack": "another-slack-secret",
}


def verified_flows(settings: Settings) -> dict[str, FlowSettings]:
    flows = dict(settings.flows)
    for provider in PROVIDERS.values():
        flows[f"{provider.scheme}_hook"] = FlowSettings(
            target="flows.demo:echo", verify=provider.scheme, secret=provider.secret
        )
    return flows


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    base = make_settings()
    return base.replace(flows=verified_flows(base))


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    return client


def triggers(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(flow_id, run_id, verification) of every stored trigger, read-only from the database."""
    rows = query_rows(
        settings,
        "SELECT flow_id, run_id, verification FROM triggers"
        f" ORDER BY received_at, {insertion_order(settings)}",
    )
    return [(str(flow_id), run_id, str(verification)) for flow_id, run_id, verification in rows]


def assert_rejected_only(settings: Settings, reason: str) -> None:
    [(_, run_id, verification)] = triggers(settings)
    assert run_id is None
    assert verification.startswith("rejected: ")
    assert reason in verification
    assert count_rows(settings, "runs") == 0
    assert count_rows(settings, "deliveries") == 0


# provider signatures


@pytest.mark.parametrize("scheme", PROVIDERS)
async def test_a_valid_signature_starts_a_verified_run(
    gateway: Any, settings: Settings, clock: FakeClock, scheme: str
) -> None:
    provider = PROVIDERS[scheme]
    headers = provider.sign(provider.secret, BODY, int(clock.now()))
    response = await gateway.post(
        f"/api/v1/webhook/{scheme}_hook",
        data=BODY,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status == 202, await response.text()
    run_id = (await response.json())["run_id"]
    assert (await finished_run(gateway, run_id))["values"] == {
        "ref": "refs/heads/main",
        "commits": 2,
    }
    store = gateway.app[keys.store_key]
    trigger = await store.get_trigger((await store.get_run(run_id)).trigger_id)
    assert (trigger.verification, trigger.body, trigger.run_id) == ("verified", BODY, run_id)
    assert not trigger.rejected


def bad_requests(provider: Provider, now: int) -> dict[str, tuple[dict[str, str], bytes, str]]:
    good = provider.sign(provider.secret, BODY, now)
    cases = {
        "tampered body": (good, BODY.replace(b"2", b"3"), "bad signature"),
        "wrong secret": (
            provider.sign(WRONG_SECRETS[provider.scheme], BODY, now),
            BODY,
            "bad signature",
        ),
        "missing header": (
            {k: v for k, v in good.items() if k != provider.signature_header},
            BODY,
            f"missing {provider.signature_header} header",
        ),
    }
    if provider.timed:
        stale = provider.sign(provider.secret, BODY, now - 301)
        cases["stale timestamp"] = (stale, BODY, "timestamp outside tolerance")
    return cases


CASES = [
    (scheme, case) for scheme, provider in PROVIDERS.items() for case in bad_requests(provider, 0)
]


@pytest.mark.parametrize(("scheme", "case"), CASES)
async def test_a_bad_signature_is_401_stored_as_rejected_with_no_run(
    gateway: Any, settings: Settings, clock: FakeClock, scheme: str, case: str
) -> None:
    headers, body, reason = bad_requests(PROVIDERS[scheme], int(clock.now()))[case]
    response = await gateway.post(f"/api/v1/webhook/{scheme}_hook", data=body, headers=headers)
    assert response.status == 401
    detail = (await response.json())["detail"]
    assert reason in detail
    assert detail.startswith(f"Webhook verification failed ({scheme}): ")
    assert_rejected_only(settings, reason)


async def test_a_rejected_trigger_keeps_its_request_for_inspection(
    gateway: Any, settings: Settings, clock: FakeClock
) -> None:
    headers = github("wrong", BODY, 0)
    response = await gateway.post(
        "/webhook/github_hook?x-api-key=leakyvalue123",
        data=BODY,
        headers={**headers, "X-GitHub-Delivery": "d-1", "Authorization": "Bearer leakyvalue123"},
    )
    assert response.status == 401
    [row] = query_rows(
        settings, "SELECT path, query, headers, body, idempotency_key, received_at FROM triggers"
    )
    path, query, stored_headers, body, key, received_at = row
    assert (path, body, key, received_at) == (
        "/webhook/github_hook",
        BODY,
        "x-github-delivery:d-1",
        clock.now(),
    )
    assert "leakyvalue123" not in query
    assert "leakyvalue123" not in stored_headers
    assert headers["X-Hub-Signature-256"] not in stored_headers  # masked by its name
    assert '"X-Hub-Signature-256":"****' in stored_headers


async def test_a_rejected_delivery_id_does_not_block_the_genuine_one(
    gateway: Any, settings: Settings, clock: FakeClock
) -> None:
    delivery = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    forged = await gateway.post(
        "/api/v1/webhook/github_hook", data=BODY, headers={**github("x", BODY, 0), **delivery}
    )
    genuine_headers = {**github(PROVIDERS["github"].secret, BODY, 0), **delivery}
    genuine = await gateway.post("/api/v1/webhook/github_hook", data=BODY, headers=genuine_headers)
    redelivered = await gateway.post(
        "/api/v1/webhook/github_hook", data=BODY, headers=genuine_headers
    )
    assert (forged.status, genuine.status, redelivered.status) == (401, 202, 202)
    run_id = (await genuine.json())["run_id"]
    assert (await redelivered.json())["run_id"] == run_id
    assert [(run, verification) for _, run, verification in triggers(settings)] == [
        (None, "rejected: bad signature in X-Hub-Signature-256"),
        (run_id, "verified"),
    ]
    assert count_rows(settings, "runs") == 1


async def test_flows_without_verification_record_none(gateway: Any, settings: Settings) -> None:
    response = await gateway.post("/api/v1/webhook/echo", json={"a": 1})
    assert response.status == 202
    assert [verification for _, _, verification in triggers(settings)] == ["none"]


async def test_the_shipped_github_flow_verifies(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    gateway = await aiohttp_client(create_app(settings))
    unsigned = await gateway.post("/api/v1/webhook/github_push", data=BODY)
    assert unsigned.status == 401
    secret = settings.flows["github_push"].secret
    signed = await gateway.post(
        "/api/v1/webhook/github_push", data=BODY, headers=github(secret, BODY, 0)
    )
    assert signed.status == 202
    assert count_rows(settings, "runs") == 1


# signed trigger URLs


@pytest.fixture
def keyed_settings(settings: Settings) -> Settings:
    return settings.replace(api_key="k-123456789")


@pytest.fixture
async def keyed(
    aiohttp_client: Callable[..., Any], keyed_settings: Settings, clock: FakeClock
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(keyed_settings, clock=clock))
    return client


def token_for(settings: Settings, flow_id: str, expires_at: float) -> str:
    return verify.trigger_token(settings.signing_secret, flow_id, expires_at)


@pytest.mark.parametrize("path", ["/api/v1/webhook/echo", "/webhook/echo"])
async def test_a_signed_url_stands_in_for_the_api_key(
    keyed: Any, keyed_settings: Settings, clock: FakeClock, path: str
) -> None:
    token = token_for(keyed_settings, "echo", clock.now() + 3600)
    response = await keyed.post(path, params={"token": token, "keep": "1"}, json={"n": 1})
    assert response.status == 202, await response.text()
    run_id = (await response.json())["run_id"]
    store = keyed.app[keys.store_key]

    async def finished() -> Any:
        run = await store.get_run(run_id)
        return run if run.status.is_final else None

    assert (await eventually(finished)).output == {"n": 1}
    trigger = await store.get_trigger((await store.get_run(run_id)).trigger_id)
    assert token not in trigger.query
    assert token[-2:] in trigger.query, "masked, not dropped"
    assert "keep=1" in trigger.query


async def test_refused_tokens_are_403_with_nothing_stored(
    keyed: Any, keyed_settings: Settings, clock: FakeClock
) -> None:
    valid = token_for(keyed_settings, "echo", clock.now() + 3600)
    forged = verify.trigger_token(
        "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", "echo", clock.now() + 3600
    )
    refused = {
        "tampered": (valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB"), "Invalid"),
        "other secret": (forged, "Invalid"),
        "other flow": (token_for(keyed_settings, "agent", clock.now() + 3600), "another flow"),
        "empty": ("", "Invalid"),
    }
    for name, (token, message) in refused.items():
        response = await keyed.post("/api/v1/webhook/echo", params={"token": token}, json={})
        assert response.status == 403, name
        assert message in (await response.json())["detail"], name
    with_key = await keyed.post(
        "/api/v1/webhook/echo",
        params={"token": "garbage"},
        headers={"x-api-key": "k-123456789"},
        json={},
    )
    assert with_key.status == 403, "a token present is the credential; a bad one is refused"
    clock.advance(3600)
    expired = await keyed.post("/api/v1/webhook/echo", params={"token": valid}, json={})
    assert expired.status == 403
    assert (await expired.json()) == {"detail": "Trigger token expired"}
    for table in ("triggers", "runs", "deliveries"):
        assert count_rows(keyed_settings, table) == 0, table


async def test_a_token_opens_only_the_webhook_route(
    keyed: Any, keyed_settings: Settings, clock: FakeClock
) -> None:
    token = token_for(keyed_settings, "echo", clock.now() + 3600)
    listing = await keyed.get("/api/v1/endpoints", params={"token": token})
    creating = await keyed.post(
        "/api/v1/endpoints", params={"token": token}, json={"url": "http://127.0.0.1:9/x"}
    )
    assert (listing.status, creating.status) == (403, 403)
    assert count_rows(keyed_settings, "endpoints") == 0


async def test_a_token_for_a_verified_flow_still_needs_the_signature(
    keyed: Any, keyed_settings: Settings, clock: FakeClock
) -> None:
    token = token_for(keyed_settings, "github_hook", clock.now() + 3600)
    unsigned = await keyed.post("/api/v1/webhook/github_hook", params={"token": token}, data=BODY)
    assert unsigned.status == 401
    signed = await keyed.post(
        "/api/v1/webhook/github_hook",
        params={"token": token},
        data=BODY,
        headers=github(PROVIDERS["github"].secret, BODY, 0),
    )
    assert signed.status == 202


# the dedup window


@pytest.mark.parametrize("header", ["Idempotency-Key", "webhook-id", "X-GitHub-Delivery"])
async def test_a_delivery_id_deduplicates_within_the_window_only(
    gateway: Any, settings: Settings, clock: FakeClock, header: str
) -> None:
    async def post(n: int) -> str:
        response = await gateway.post("/api/v1/webhook/echo", json={"n": n}, headers={header: "d1"})
        assert response.status == 202
        run_id: str = (await response.json())["run_id"]
        return run_id

    first = await post(1)
    clock.advance(settings.dedup_window_seconds - 1)
    assert await post(2) == first, "inside the window: the first run"
    clock.advance(2)
    second = await post(3)
    assert second != first, "past the window: a new run"
    clock.advance(60)
    assert await post(4) == second, "the new run opens a new window"
    assert count_rows(settings, "runs") == 2
    assert (await finished_run(gateway, second))["values"] == {"n": 3}


async def test_the_window_is_a_setting(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> None:
    short = settings.replace(dedup_window_seconds=30.0)
    gateway = await aiohttp_client(create_app(short, clock=clock))
    headers = {"Idempotency-Key": "k"}
    first = await (await gateway.post("/api/v1/webhook/echo", json={}, headers=headers)).json()
    clock.advance(29)
    again = await (await gateway.post("/api/v1/webhook/echo", json={}, headers=headers)).json()
    clock.advance(2)
    later = await (await gateway.post("/api/v1/webhook/echo", json={}, headers=headers)).json()
    assert again["run_id"] == first["run_id"] != later["run_id"]


async def test_a_migrated_database_keeps_deduplicating(
    settings: Settings, clock: FakeClock, aiohttp_client: Callable[..., Any]
) -> None:
    """A version-1 file (unique index) opens, migrates, and serves repeated keys by window."""
    if backend_of(settings.database_url) != "sqlite":
        pytest.skip("the upgrade of a SQLite file from its version 1")
    path = path_from_url(settings.database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0].read_text() + ";PRAGMA user_version=1;")
    gateway = await aiohttp_client(create_app(settings, clock=clock))
    headers = {"Idempotency-Key": "m"}
    first = await (await gateway.post("/api/v1/webhook/echo", json={}, headers=headers)).json()
    clock.advance(settings.dedup_window_seconds + 1)
    later = await (await gateway.post("/api/v1/webhook/echo", json={}, headers=headers)).json()
    assert first["run_id"] != later["run_id"]
    assert [v for _, _, v in triggers(settings)] == ["none", "none"]
