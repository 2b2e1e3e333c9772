"""Two ways to prove a callback came from us: signed query tokens and Standard Webhooks headers.

The query token (itsdangerous, one salt per purpose) serves receivers that read the URL; it
names the delivery and the SHA-256 of the body it vouches for, so it proves nothing about
another request. The ``webhook-*`` headers serve receivers that verify the body with any
Standard Webhooks library. Per-run callbacks are signed with a secret derived for the
destination's origin, so a signature obtained by sending to one receiver verifies nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import itsdangerous
import yarl

from gateway import errors

CALLBACK_SALT = "hookgate.callback"
TRIGGER_SALT = "hookgate.trigger"
SECRET_PREFIX = "whsec_"
ORIGIN_CONTEXT = "hookgate.callback-origin:"
TOKEN_PARAM = "hookgate_token"
TOKEN_MAX_AGE = 300  # seconds: the Standard Webhooks timestamp tolerance
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret, decoded exactly as the ``standardwebhooks`` package does."""
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        if not _BASE64.fullmatch(body):
            raise ValueError(body)
        key = base64.b64decode(body + "==")
    except (binascii.Error, ValueError):
        raise ValueError(
            "expected a base64 secret such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ) from None
    if len(key) < 16:
        raise ValueError("the secret must hold at least 16 bytes")
    return key


def sign_payload(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    secrets: tuple[str, ...], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Standard Webhooks headers; one signature per secret, space-separated, during a rotation."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign_payload(secret, msg_id, timestamp, body) for secret in secrets
        ),
    }


class _SignedAt(itsdangerous.TimestampSigner):
    """Stamps the time it is given (the gateway's clock) instead of reading the wall clock."""

    def __init__(self, *args: Any, signed_at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signed_at = signed_at

    def get_timestamp(self) -> int:
        return self.signed_at


def dumps_token(
    secret: str, salt: str, data: dict[str, Any], signed_at: float | None = None
) -> str:
    if signed_at is None:
        return itsdangerous.URLSafeTimedSerializer(secret, salt=salt).dumps(data)
    serializer = itsdangerous.URLSafeTimedSerializer(
        secret, salt=salt, signer=_SignedAt, signer_kwargs={"signed_at": int(signed_at)}
    )
    return serializer.dumps(data)


def loads_token(secret: str, salt: str, token: str, max_age: int | None = None) -> Any:
    serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=salt)
    try:
        return serializer.loads(token, max_age=max_age)
    except itsdangerous.SignatureExpired:
        raise errors.Forbidden("token expired") from None
    except itsdangerous.BadSignature:
        raise errors.Forbidden("invalid token") from None


def callback_origin(url: str) -> str:
    """``scheme://host:port`` as the HTTP client will connect: host lower-cased, IDNA-encoded,
    IP literals canonical, the default port spelled out."""
    try:
        parsed = yarl.URL(url)
        port = parsed.port
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host_subcomponent or port is None:
        raise ValueError("expected an absolute http(s) URL such as https://example.com/hook")
    return f"{parsed.scheme}://{parsed.host_subcomponent}:{port}"


@functools.lru_cache(maxsize=1024)
def callback_secret(signing_secret: str, url: str) -> str:
    """The ``whsec_`` secret that signs per-run callbacks to ``url``'s origin, derived from the
    signing secret: ``base64(HMAC-SHA256(key, "hookgate.callback-origin:" + origin))``."""
    message = (ORIGIN_CONTEXT + callback_origin(url)).encode()
    digest = hmac.new(secret_key(signing_secret), message, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def with_callback_tokens(
    url: str,
    secrets: Sequence[str],
    delivery_id: str,
    run_id: str | None,
    body: bytes,
    signed_at: float,
) -> str:
    """The URL with one ``hookgate_token=…`` per secret (current first, then the previous one
    during a rotation) appended, leaving the URL's own query untouched."""
    claims = {"delivery_id": delivery_id, "run_id": run_id, "body_sha256": body_digest(body)}
    tokens = "&".join(
        f"{TOKEN_PARAM}={quote(dumps_token(secret, CALLBACK_SALT, claims, signed_at))}"
        for secret in secrets
    )
    base, hash_mark, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return f"{base}{separator}{tokens}{hash_mark}{fragment}"


def check_callback_tokens(
    tokens: Sequence[str],
    secrets: Sequence[str],
    webhook_id: str | None,
    body: bytes,
    now: float,
    max_age: float = TOKEN_MAX_AGE,
) -> dict[str, Any]:
    """The claims of a token one of ``secrets`` signed for this very request: this ``webhook-id``,
    this body, within ``max_age`` of ``now``. Raises ``Forbidden`` saying what failed."""
    problem = "bad signature: not signed with this secret, or altered"
    for token in tokens:
        for secret in secrets:
            serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=CALLBACK_SALT)
            try:
                claims, signed_at = serializer.loads(token, return_timestamp=True)
            except itsdangerous.BadData:
                continue
            found = _callback_problem(claims, signed_at.timestamp(), webhook_id, body, now, max_age)
            if found is None:
                return dict(claims)
            problem = found
    raise errors.Forbidden(problem)


def _callback_problem(
    claims: Any, signed_at: float, webhook_id: str | None, body: bytes, now: float, max_age: float
) -> str | None:
    age = now - signed_at
    if abs(age) > max_age:
        when = f"{age:.0f} s before" if age > 0 else f"{-age:.0f} s after"
        return f"valid signature, but signed {when} it arrived (at most {max_age:g} s apart)"
    if not isinstance(claims, dict) or "body_sha256" not in claims:
        return "valid signature, but the token names no delivery and body"
    delivery_id = claims.get("delivery_id")
    if webhook_id is None:
        return f"signed for delivery {delivery_id}, but the webhook-id header is missing"
    if delivery_id != webhook_id:
        return f"signed for delivery {delivery_id}, but webhook-id is {webhook_id}"
    if claims["body_sha256"] != body_digest(body):
        return f"signed for delivery {delivery_id}, but for another body: the body was altered"
    return None
