"""Inbound verification: did this trigger really come from the sender whose secret we hold?

Two kinds of proof, both pure functions so they can be tested from tables:

- a provider's body signature (``verify(scheme, secret, headers, body, now)``), computed over the
  raw body bytes exactly as GitHub, Stripe, Standard Webhooks/Svix and Slack compute it; each
  returns None or raises ``VerificationFailed`` with a reason fit for a 401 answer;
- a signed trigger URL (``trigger_token`` / ``check_trigger_token``): an itsdangerous token over
  ``{"flow_id", "exp"}`` that stands in for the API key on that one flow's webhook route.

Times come from the caller (the app clock), never from ``time.time()``. Every comparison of
a secret-derived value is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from gateway import errors, signing

NONE = "none"
SCHEMES = ("github", "stripe", "standard", "slack")
TOLERANCE_SECONDS = 300.0  # Stripe's, Slack's and Standard Webhooks' replay window

Verifier = Callable[[str, Mapping[str, str], bytes, float], None]


class VerificationFailed(Exception):
    """The request does not prove it came from the sender; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def verify(scheme: str, secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Check ``body`` against the signature headers of ``scheme``; raise ``VerificationFailed``."""
    try:
        verifier = VERIFIERS[scheme]
    except KeyError:
        raise ValueError(f"unknown verification scheme {scheme!r}") from None
    if not secret:
        raise VerificationFailed("no secret is configured for this flow")
    verifier(secret, headers, body, now)


def check_secret(scheme: str, secret: str) -> None:
    """Raise ``ValueError`` if ``secret`` cannot serve ``scheme`` (used when loading settings)."""
    if not secret:
        raise ValueError("a secret is required (secret = … or secret_env = …)")
    if scheme == "standard":
        signing.secret_key(secret)


# providers


def github(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``; GitHub sends no timestamp."""
    headers = _lowered(headers)
    header = "X-Hub-Signature-256"
    value = _required(headers, header)
    scheme, _, given = value.partition("=")
    if scheme != "sha256" or not given:
        raise VerificationFailed(f"malformed {header} header: expected sha256=<hex>")
    expected = _hex_hmac(secret.encode(), body)
    if not hmac.compare_digest(expected, given.strip().lower().encode()):
        raise VerificationFailed(f"bad signature in {header}")


def stripe(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>…]`` over ``"<ts>.<body>"``.

    The ``whsec_…`` string is the HMAC key as is (Stripe does not base64-decode it).
    """
    headers = _lowered(headers)
    header = "Stripe-Signature"
    value = _required(headers, header)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, _, part = item.strip().partition("=")
        if key == "t":
            timestamps.append(part)
        elif key == "v1":
            signatures.append(part)
    if len(timestamps) != 1 or not signatures:
        raise VerificationFailed(f"malformed {header} header: expected t=<timestamp>,v1=<hex>")
    timestamp = _timestamp(timestamps[0], f"{header} t")
    expected = _hex_hmac(secret.encode(), f"{timestamp}.".encode() + body)
    if not any(hmac.compare_digest(expected, given.strip().encode()) for given in signatures):
        raise VerificationFailed(f"bad signature in {header}")
    _within_tolerance(timestamp, now)


def standard(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Standard Webhooks (``webhook-id``/``-timestamp``/``-signature``) or Svix's ``svix-*`` names.

    ``webhook-signature`` lists space-separated ``v1,<base64>`` entries; any one may match.
    """
    headers = _lowered(headers)
    prefix = (
        "webhook" if "webhook-signature" in headers or "svix-signature" not in headers else "svix"
    )
    msg_id = _required(headers, f"{prefix}-id")
    stamp = _required(headers, f"{prefix}-timestamp")
    value = _required(headers, f"{prefix}-signature")
    timestamp = _timestamp(stamp, f"{prefix}-timestamp")
    expected = base64.b64decode(signing.sign_payload(secret, msg_id, timestamp, body)[3:])
    if not any(hmac.compare_digest(expected, given) for given in _v1_signatures(value)):
        raise VerificationFailed(f"bad signature in {prefix}-signature")
    _within_tolerance(timestamp, now)


def slack(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>``, ``X-Slack-Request-Timestamp``."""
    headers = _lowered(headers)
    header = "X-Slack-Signature"
    value = _required(headers, header)
    stamp = _required(headers, "X-Slack-Request-Timestamp")
    timestamp = _timestamp(stamp, "X-Slack-Request-Timestamp")
    version, _, given = value.partition("=")
    if version != "v0" or not given:
        raise VerificationFailed(f"malformed {header} header: expected v0=<hex>")
    expected = _hex_hmac(secret.encode(), f"v0:{stamp}:".encode() + body)
    if not hmac.compare_digest(expected, given.strip().lower().encode()):
        raise VerificationFailed(f"bad signature in {header}")
    _within_tolerance(timestamp, now)


VERIFIERS: Mapping[str, Verifier] = {
    "github": github,
    "stripe": stripe,
    "standard": standard,
    "slack": slack,
}


# signed trigger URLs


def trigger_token(secret: str, flow_id: str, expires_at: float) -> str:
    """A token for ``?token=`` on ``/api/v1/webhook/<flow_id>``, valid until ``expires_at``."""
    return signing.dumps_token(
        secret, signing.TRIGGER_SALT, {"flow_id": flow_id, "exp": int(expires_at)}
    )


def check_trigger_token(secret: str, token: str, flow_id: str, now: float) -> None:
    """Raise ``Forbidden`` unless ``token`` was signed with ``secret`` for ``flow_id`` and is unexpired.

    The expiry travels in the payload and is compared with ``now`` (the app clock), so one
    secret can sign URLs of different lifetimes.
    """
    if not secret:
        raise errors.Forbidden("Signed trigger URLs are disabled: no signing_secret is configured")
    try:
        claims: Any = signing.loads_token(secret, signing.TRIGGER_SALT, token)
    except errors.Forbidden:
        raise errors.Forbidden("Invalid trigger token") from None
    if not isinstance(claims, dict):
        raise errors.Forbidden("Invalid trigger token")
    expires_at = claims.get("exp")
    if claims.get("flow_id") != flow_id:
        raise errors.Forbidden("Trigger token was issued for another flow")
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        raise errors.Forbidden("Invalid trigger token")
    if now >= expires_at:
        raise errors.Forbidden("Trigger token expired")


# helpers


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise VerificationFailed(f"missing {name} header")
    return value


def _timestamp(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise VerificationFailed(f"malformed {what}: expected Unix seconds") from None


def _within_tolerance(timestamp: int, now: float) -> None:
    skew = timestamp - now
    if abs(skew) > TOLERANCE_SECONDS:
        raise VerificationFailed(
            f"timestamp outside tolerance: {skew:+.0f} s from now, "
            f"the limit is ±{TOLERANCE_SECONDS:.0f} s"
        )


def _hex_hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).hexdigest().encode()


def _v1_signatures(value: str) -> list[bytes]:
    signatures = []
    for entry in value.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # e.g. v1a (ed25519) entries: not ours to check
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return signatures
