"""Bins: URLs that record whatever is sent to them, and check hookgate's signatures on it.

``/inspect/bins/<bin_id>`` accepts any method, stores the request as received (secret headers
masked, the body byte for byte) and answers with the bin's chosen status after its chosen
delay, so a bin can stand in for a failing receiver. Its page checks each request against a
secret the user picks by name (an endpoint's, or the per-run callback secret of the bin's own
origin): the ``hookgate_token`` query tokens, bound to the ``webhook-id`` and the body, and the
Standard Webhooks ``webhook-signature`` header. Secrets are read at check time, never rendered.
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

from aiohttp import web

from gateway import errors, keys, log, models, signing
from gateway.store import base

MAX_DELAY = 30.0
TIMESTAMP_TOLERANCE = signing.TOKEN_MAX_AGE  # seconds, as the standardwebhooks libraries allow
BIN_ID_BYTES = 9  # 12 url-safe characters, 72 random bits: unguessable, short enough to read
VERIFIED_HEADERS = ("webhook-signature",)  # kept unmasked: the page checks it


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
        models.CapturedRequest(
            bin_id=bin_id,
            received_at=request.config_dict[keys.clock_key].now(),
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=log.masked_headers(request.headers, keep=VERIFIED_HEADERS),
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            source=request.remote or "",
        ),
        keep=request.config_dict[keys.settings_key].bin_keep_captures,
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
    signing_secret: str, origin: str, endpoints: Sequence[models.Endpoint], now: float
) -> list[SecretChoice]:
    """The endpoints' secrets, and the secret of per-run callbacks to ``origin`` (the bin's)."""
    try:
        per_run = SecretChoice(
            "signing",
            f"per-run webhook secret of {signing.callback_origin(origin)}",
            (signing.callback_secret(signing_secret, origin),),
        )
    except ValueError:
        per_run = SecretChoice("signing", f"per-run webhook secret (bad origin {origin!r})", ())
    choices = [per_run]
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
    """The bin's choice; ``auto`` is the endpoint that targets this bin, else the per-run secret."""
    by_key = {choice.key: choice for choice in choices}
    if verify_with in by_key:
        return by_key[verify_with]
    for endpoint in endpoints:
        target = endpoint.url.split("?", 1)[0].rstrip("/")
        if target.endswith(f"/inspect/bins/{bin_id}"):
            return by_key[f"endpoint:{endpoint.endpoint_id}"]
    return by_key["signing"]


def verify_capture(captured: models.CapturedRequest, choice: SecretChoice) -> Verdict:
    headers = {name.lower(): value for name, value in captured.headers.items()}
    tokens = [
        value
        for name, value in parse_qsl(captured.query, keep_blank_values=True)
        if name == signing.TOKEN_PARAM and value
    ]
    checks = (
        _check_token(tokens, headers, choice.values, captured),
        _check_signature(headers, captured, choice.values),
    )
    present = [check for check in checks if check.ok is not None]
    ok = None if not present else all(check.ok for check in present)
    return Verdict(ok=ok, checks=checks, secret_label=choice.label)


def _check_token(
    tokens: Sequence[str],
    headers: dict[str, str],
    secrets_: Sequence[str],
    captured: models.CapturedRequest,
) -> Check:
    name = signing.TOKEN_PARAM
    if not tokens:
        return Check(name, None, "no hookgate_token in the query")
    try:
        claims = signing.check_callback_tokens(
            tokens, secrets_, headers.get("webhook-id"), captured.body, captured.received_at
        )
    except errors.Forbidden as exc:
        return Check(name, False, exc.detail)
    return Check(name, True, f"signed for delivery {claims['delivery_id']} and this body")


def _check_signature(
    headers: dict[str, str], captured: models.CapturedRequest, secrets_: Sequence[str]
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
        if not status.isascii() or not status.isdigit() or not 100 <= int(status) <= 599:
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
