"""Signing: the Standard Webhooks vector, third-party verification, and the query token."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import itsdangerous
import pytest
import standardwebhooks

from gateway import errors, signing

VECTOR_SECRET = "whsec_plJ3nmyCDGBKInavdOK15jsl"
VECTOR_BODY = b'{"event_type":"ping","data":{"success":true}}'


def test_matches_the_published_standard_webhooks_vector() -> None:
    signature = signing.sign_payload(VECTOR_SECRET, "msg_loFOjxBNrRLzqYUf", 1731705121, VECTOR_BODY)
    assert signature == "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0="


def test_standardwebhooks_accepts_our_headers_and_rejects_tampering() -> None:
    secret = signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.webhook_headers((secret,), "01a2-delivery", now, VECTOR_BODY)
    assert standardwebhooks.Webhook(secret).verify(VECTOR_BODY, headers)["event_type"] == "ping"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(VECTOR_BODY + b" ", headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.new_secret()).verify(VECTOR_BODY, headers)


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!", "short", "whsec_YWJj"])
def test_bad_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.secret_key(bad)


def test_callback_token_keeps_the_urls_own_query() -> None:
    url = signing.with_callback_token(
        "https://example.com/hook?token=abc&x=1", "s3cret", "d1", "r1"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["token"] == ["abc"]
    assert query["x"] == ["1"]
    [token] = query["hookgate_token"]
    claims = itsdangerous.URLSafeTimedSerializer("s3cret", salt="hookgate.callback").loads(token)
    assert claims == {"delivery_id": "d1", "run_id": "r1"}
    plain = signing.with_callback_token("https://example.com/hook", "s3cret", "d1", "r1")
    assert plain.startswith("https://example.com/hook?hookgate_token=")


def test_tokens_are_bound_to_their_purpose() -> None:
    token = signing.dumps_token("s3cret", signing.CALLBACK_SALT, {"run_id": "r"})
    assert signing.loads_token("s3cret", signing.CALLBACK_SALT, token) == {"run_id": "r"}
    with pytest.raises(errors.Forbidden, match="invalid token"):
        signing.loads_token("s3cret", signing.TRIGGER_SALT, token)
    with pytest.raises(errors.Forbidden, match="invalid token"):
        signing.loads_token("other", signing.CALLBACK_SALT, token)
