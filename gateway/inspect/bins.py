"""Bins: URLs that record whatever is sent to them, and check hookgate's signatures on it.

``/inspect/bins/<bin_id>`` accepts any method, stores the request as received (secret headers
masked, the body byte for byte) and answers with the bin's chosen status after its chosen
delay, so a bin can stand in for a failing receiver. Its page checks each request against a
secret the user picks by name (the gateway's signing secret, or an endpoint's): the
``hookgate_token`` query token (itsdangerous, salt ``hookgate.callback``) and the Standard
Webhooks ``webhook-signature`` header. Secrets are read at check time and never rendered.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qsl

import itsdangerous
from aiohttp import web

from gateway import keys, log, models, signing
from gateway.inspect import feed
from gateway.store import base

KEEP_CAPTURES = 500
MAX_DELAY = 30.0
TIMESTAMP_TOLERANCE = 300  # seconds, as the standardwebhooks libraries allow
BIN_ID_BYTES = 9  # 12 url-safe characters, 72 random bits: unguessable, short enough to read
notifier_key = web.AppKey("inspect_notifier", feed.Notifier)


def new_bin_id() -> str:
    return secrets.token_urlsafe(BIN_ID_BYTES)


def inspect_store(request: web.Request) -> base.InspectStore:
    """The app's store, seen through the verbs ``/inspect`` adds."""
    return cast(base.InspectStore, request.config_dict[keys.store_key])


async def capture(request: web.Request) -> web.Response:
    """Record any request sent to the bin; answer as the bin is told to."""
    bin_id = request.match_info["bin_id"]
    store = inspect_store(request)
    found = await store.get_bin(bin_id)
    if found is None:
        return web.json_response({"detail": f"Bin {bin_id} not found"}, status=404)
    body = await request.read()
    stored = await store.capture_request(
        base.CapturedRequest(
            bin_id=bin_id,
            received_at=request.config_dict[keys.clock_key].now(),
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=log.masked_headers(request.headers),
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            source=request.remote or "",
        ),
        keep=KEEP_CAPTURES,
    )
    request.config_dict[notifier_key].publish(
        "capture", bin_id=bin_id, capture_id=stored.capture_id
    )
    if found.reply_delay > 0:
        await asyncio.sleep(min(found.reply_delay, MAX_DELAY))
    if found.reply_status in (204, 304) or request.method == "HEAD":
        return web.Response(status=found.reply_status)
    return web.json_response(
        {"captured": stored.capture_id, "bin": bin_id}, status=found.reply_status
    )


@dataclasses.dataclass(frozen=True)
class Check:
    """One proof: ``ok`` is True (✓), False (✗) or None (not present)."""

    name: str
    ok: bool | None
    reason: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool | None
    checks: tuple[Check, ...]
    secret_label: str

    @property
    def summary(self) -> str:
        if self.ok is None:
            return "unsigned"
        return "verified" if self.ok else "not verified"


@dataclasses.dataclass(frozen=True)
class SecretChoice:
    """A secret the page can check against, by name; ``value``s never reach a template."""

    key: str  # 'signing' or 'endpoint:<id>'
    label: str
    values: tuple[str, ...]


def secret_choices(
    signing_secret: str, endpoints: Sequence[models.Endpoint], now: float
) -> list[SecretChoice]:
    choices = [
        SecretChoice("signing", "gateway signing secret (per-run webhook URLs)", (signing_secret,))
    ]
    for endpoint in endpoints:
        label = f"endpoint {endpoint.url}"
        if endpoint.description:
            label = f"endpoint {endpoint.description} ({endpoint.url})"
        choices.append(
            SecretChoice(f"endpoint:{endpoint.endpoint_id}", label, endpoint.signing_secrets(now))
        )
    return choices


def choose_secret(
    verify_with: str,
    bin_id: str,
    choices: Sequence[SecretChoice],
    endpoints: Sequence[models.Endpoint],
) -> SecretChoice:
    """The bin's choice; ``auto`` is the endpoint that targets this bin, else the signing secret."""
    by_key = {choice.key: choice for choice in choices}
    if verify_with in by_key:
        return by_key[verify_with]
    for endpoint in endpoints:
        target = endpoint.url.split("?", 1)[0].rstrip("/")
        if target.endswith(f"/inspect/bins/{bin_id}"):
            return by_key[f"endpoint:{endpoint.endpoint_id}"]
    return by_key["signing"]


def verify_capture(
    captured: base.CapturedRequest, choice: SecretChoice, token_max_age: float
) -> Verdict:
    headers = {name.lower(): value for name, value in captured.headers.items()}
    query = dict(parse_qsl(captured.query, keep_blank_values=True))
    checks = (
        _check_token(query.get("hookgate_token"), headers, choice.values, captured, token_max_age),
        _check_signature(headers, captured, choice.values),
    )
    present = [check for check in checks if check.ok is not None]
    ok = None if not present else all(check.ok for check in present)
    return Verdict(ok=ok, checks=checks, secret_label=choice.label)


def _check_token(
    token: str | None,
    headers: dict[str, str],
    secrets_: Sequence[str],
    captured: base.CapturedRequest,
    max_age: float,
) -> Check:
    name = "hookgate_token"
    if not token:
        return Check(name, None, "no hookgate_token in the query")
    for secret in secrets_:
        serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=signing.CALLBACK_SALT)
        try:
            claims, signed_at = serializer.loads(token, return_timestamp=True)
        except itsdangerous.BadData:
            continue
        age = captured.received_at - signed_at.timestamp()
        if age > max_age:
            return Check(
                name, False, f"valid signature, but expired: signed {age:.0f} s before it arrived"
            )
        delivery_id = claims.get("delivery_id") if isinstance(claims, dict) else None
        webhook_id = headers.get("webhook-id")
        if webhook_id and delivery_id != webhook_id:
            return Check(
                name, False, f"signed for delivery {delivery_id}, but webhook-id is {webhook_id}"
            )
        return Check(name, True, f"signed for delivery {delivery_id}")
    return Check(name, False, "bad signature: not signed with this secret, or altered")


def _check_signature(
    headers: dict[str, str], captured: base.CapturedRequest, secrets_: Sequence[str]
) -> Check:
    name = "webhook-signature"
    msg_id, stamp, signature = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    )
    if not signature:
        return Check(name, None, "no webhook-signature header")
    if not msg_id or not stamp:
        return Check(name, False, "webhook-id or webhook-timestamp header missing")
    try:
        timestamp = int(stamp)
    except ValueError:
        return Check(name, False, f"webhook-timestamp is not a number: {stamp!r}")
    given = {part.split(",", 1)[1] for part in signature.split() if part.startswith("v1,")}
    signed = f"{msg_id}.{timestamp}.".encode() + captured.body
    for secret in secrets_:
        try:
            key = signing.secret_key(secret)
        except ValueError:
            continue
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            skew = captured.received_at - timestamp
            if abs(skew) > TIMESTAMP_TOLERANCE:
                return Check(
                    name, False, f"signature matches, but the timestamp is {skew:.0f} s off"
                )
            return Check(name, True, "HMAC-SHA256 over id.timestamp.body matches")
    return Check(
        name,
        False,
        "signature mismatch: the body, id or timestamp was altered, or another secret signed it",
    )


def parse_reply(data: Any) -> dict[str, Any]:
    """Validate the bin settings form: reply status 100 to 599, delay 0 to 30 s, a secret choice."""
    changes: dict[str, Any] = {}
    errors_: list[str] = []
    status = str(data.get("reply_status", "")).strip()
    if status:
        if not status.isdigit() or not 100 <= int(status) <= 599:
            errors_.append("reply status: a number from 100 to 599")
        else:
            changes["reply_status"] = int(status)
    delay = str(data.get("reply_delay", "")).strip()
    if delay:
        try:
            value = float(delay)
        except ValueError:
            value = -1.0
        if not 0 <= value <= MAX_DELAY:
            errors_.append(f"reply delay: seconds from 0 to {MAX_DELAY:g}")
        else:
            changes["reply_delay"] = value
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        changes["name"] = name.strip()[:80]
    verify_with = data.get("verify_with")
    if isinstance(verify_with, str) and verify_with:
        changes["verify_with"] = verify_with[:80]
    if errors_:
        raise ValueError("; ".join(errors_))
    return changes


def inspect_store_of(app: web.Application) -> base.InspectStore:
    return cast(base.InspectStore, app[keys.store_key])
