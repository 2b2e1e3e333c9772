"""Two ways to prove a callback came from us: a signed query token and Standard Webhooks headers.

The query token (itsdangerous, one salt per purpose) serves receivers that can only read the
URL; the ``webhook-*`` headers serve receivers that verify the body with any Standard
Webhooks library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import quote

import itsdangerous

from gateway import errors

CALLBACK_SALT = "hookgate.callback"
TRIGGER_SALT = "hookgate.trigger"
SECRET_PREFIX = "whsec_"
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


def dumps_token(secret: str, salt: str, data: dict[str, Any]) -> str:
    return itsdangerous.URLSafeTimedSerializer(secret, salt=salt).dumps(data)


def loads_token(secret: str, salt: str, token: str, max_age: int | None = None) -> Any:
    serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=salt)
    try:
        return serializer.loads(token, max_age=max_age)
    except itsdangerous.SignatureExpired:
        raise errors.Forbidden("token expired") from None
    except itsdangerous.BadSignature:
        raise errors.Forbidden("invalid token") from None


def with_callback_token(url: str, secret: str, delivery_id: str, run_id: str | None) -> str:
    """The URL with ``hookgate_token=…`` appended, leaving the URL's own query untouched."""
    token = dumps_token(secret, CALLBACK_SALT, {"delivery_id": delivery_id, "run_id": run_id})
    base, hash_mark, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return f"{base}{separator}hookgate_token={quote(token)}{hash_mark}{fragment}"
