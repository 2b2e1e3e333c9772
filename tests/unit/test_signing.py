"""Signing: the Standard Webhooks vector, third-party verification, per-origin callback secrets,
and the query token bound to its delivery and body."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import itsdangerous
import pytest

from gateway import errors, signing
from tests import needs

VECTOR_SECRET = "whsec_plJ3nmyCDGBKInavdOK15jsl"
VECTOR_BODY = b'{"event_type":"ping","data":{"success":true}}'


def test_matches_the_published_standard_webhooks_vector() -> None:
    signature = signing.sign_payload(VECTOR_SECRET, "msg_loFOjxBNrRLzqYUf", 1731705121, VECTOR_BODY)
    assert signature == "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0="


def test_standardwebhooks_accepts_our_headers_and_rejects_tampering() -> None:
    standardwebhooks = needs.module("standardwebhooks")
    secret = signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.webhook_headers((secret,), "01a2-delivery", now, VECTOR_BODY)
    assert standardwebhooks.Webhook(secret).verify(VECTOR_BODY, headers)["event_type"] == "ping"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(VECTOR_BODY + b" ", headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.new_secret()).verify(VECTOR_BODY, headers)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("whsec_", "expected a base64 secret such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (
            "whsec_not base64!",
            "expected a base64 secret such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("whsec_YWJj", "the secret must hold at least 16 bytes"),
        ("whsec_" + "A" * 20, "the secret must hold at least 16 bytes"),  # 15 bytes
    ],
)
def test_bad_secrets_are_refused(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        signing.secret_key(bad)


def test_a_secret_of_16_bytes_is_enough() -> None:
    assert len(signing.secret_key("whsec_" + base64.b64encode(b"k" * 16).decode())) == 16


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://r.example/h", "https://r.example/h?hookgate_token=T"),
        ("https://r.example/h?", "https://r.example/h?hookgate_token=T"),
        ("https://r.example/h?a=1&", "https://r.example/h?a=1&hookgate_token=T"),
        ("https://r.example/h?a=1#top", "https://r.example/h?a=1&hookgate_token=T#top"),
        ("https://r.example/h#top", "https://r.example/h?hookgate_token=T#top"),
    ],
)
def test_the_token_goes_into_the_query_before_any_fragment(url: str, expected: str) -> None:
    signed = signing.with_callback_tokens(url, ("s3cret",), "d1", "r1", b"{}", time.time())
    [token] = tokens_of(signed)
    assert signed == expected.replace("T", quote(token))


def tokens_of(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query).get("hookgate_token", [])


def test_callback_tokens_keep_the_urls_own_query() -> None:
    url = signing.with_callback_tokens(
        "https://example.com/hook?token=abc&x=1", ("s3cret",), "d1", "r1", b"{}", time.time()
    )
    query = parse_qs(urlsplit(url).query)
    assert query["token"] == ["abc"]
    assert query["x"] == ["1"]
    [token] = query["hookgate_token"]
    claims = itsdangerous.URLSafeTimedSerializer("s3cret", salt="hookgate.callback").loads(token)
    assert claims == {
        "delivery_id": "d1",
        "run_id": "r1",
        "body_sha256": hashlib.sha256(b"{}").hexdigest(),
    }
    plain = signing.with_callback_tokens(
        "https://example.com/hook", ("s3cret",), "d1", "r1", b"{}", time.time()
    )
    assert plain.startswith("https://example.com/hook?hookgate_token=")


def readme_receiver_accepts(
    url: str, secret: str, headers: dict[str, str], body: bytes, max_age: int = 300
) -> bool:
    """The README's receiver check, written against itsdangerous alone."""
    serializer = itsdangerous.URLSafeTimedSerializer(secret, salt="hookgate.callback")
    for token in tokens_of(url):
        try:
            claims = serializer.loads(token, max_age=max_age)
        except itsdangerous.BadSignature:
            continue
        if (
            claims["delivery_id"] == headers["webhook-id"]
            and claims["body_sha256"] == hashlib.sha256(body).hexdigest()
        ):
            return True
    return False


def test_a_token_vouches_for_one_delivery_and_one_body_only() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    url = signing.with_callback_tokens("https://r.example/h", (secret,), "d1", "r1", b"{}", now)
    tokens = tokens_of(url)
    assert readme_receiver_accepts(url, secret, {"webhook-id": "d1"}, b"{}")
    assert signing.check_callback_tokens(tokens, (secret,), "d1", b"{}", now)["run_id"] == "r1"
    refusals = [
        ((secret,), "d1", b'{"forged": true}', now, "the body was altered"),
        ((secret,), "d2", b"{}", now, "webhook-id is d2"),
        ((secret,), None, b"{}", now, "the webhook-id header is missing"),
        (
            (signing.new_secret(),),
            "d1",
            b"{}",
            now,
            "bad signature: not signed with this secret, or altered",
        ),
        ((secret,), "d1", b"{}", now + 301, "signed 301 s before"),
        ((secret,), "d1", b"{}", now - 301, "signed 301 s after"),
    ]
    for secrets, webhook_id, body, at, reason in refusals:
        with pytest.raises(errors.Forbidden, match=reason):
            signing.check_callback_tokens(tokens, secrets, webhook_id, body, at)
    with pytest.raises(errors.Forbidden) as refused:
        signing.check_callback_tokens(tokens, (signing.new_secret(),), "d1", b"{}", now)
    assert refused.value.detail == "bad signature: not signed with this secret, or altered"
    for edge in (now + signing.TOKEN_MAX_AGE, now - signing.TOKEN_MAX_AGE):
        assert signing.check_callback_tokens(tokens, (secret,), "d1", b"{}", edge), "at most"
    assert not readme_receiver_accepts(url, secret, {"webhook-id": "d1"}, b'{"forged": true}')
    assert not readme_receiver_accepts(url, secret, {"webhook-id": "d2"}, b"{}")


def test_an_unbound_token_is_refused() -> None:
    """A token of the old shape (no body digest) proves nothing about the request."""
    secret = signing.new_secret()
    old = signing.dumps_token(secret, signing.CALLBACK_SALT, {"delivery_id": "d1", "run_id": "r"})
    with pytest.raises(errors.Forbidden) as refused:
        signing.check_callback_tokens([old], (secret,), "d1", b"{}", time.time())
    assert refused.value.detail == "valid signature, but the token names no delivery and body"


def test_during_a_rotation_each_secret_has_its_own_token() -> None:
    current, previous = signing.new_secret(), signing.new_secret()
    now = time.time()
    url = signing.with_callback_tokens(
        "https://r.example/h?a=1", (current, previous), "d1", None, b"{}", now
    )
    assert len(tokens_of(url)) == 2
    for secret in (current, previous):
        assert readme_receiver_accepts(url, secret, {"webhook-id": "d1"}, b"{}")
        signing.check_callback_tokens(tokens_of(url), (secret,), "d1", b"{}", now)
    assert not readme_receiver_accepts(url, signing.new_secret(), {"webhook-id": "d1"}, b"{}")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("HTTPS://Receiver.EXAMPLE/hook?x=1", "https://receiver.example:443"),
        ("http://receiver.example:80/other/path", "http://receiver.example:80"),
        ("http://receiver.example:8080/", "http://receiver.example:8080"),
        ("https://bücher.example/", "https://xn--bcher-kva.example:443"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:9/", "http://127.0.0.1:9"),
        ("http://[0:0::1]:9/", "http://[::1]:9"),
    ],
)
def test_the_origin_is_what_the_client_connects_to(url: str, origin: str) -> None:
    assert signing.callback_origin(url) == origin


@pytest.mark.parametrize("bad", ["ftp://x.example/", "/relative", "not a url", "http:///hook"])
def test_an_origin_needs_an_http_url(bad: str) -> None:
    expected = "expected an absolute http(s) URL such as https://example.com/hook"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        signing.callback_origin(bad)


def test_an_origin_needs_a_valid_port() -> None:
    with pytest.raises(ValueError, match=r"^not a valid URL: "):
        signing.callback_origin("http://h:99999/")


def test_each_origin_has_its_own_callback_secret() -> None:
    standardwebhooks = needs.module("standardwebhooks")
    signing_secret = signing.new_secret()
    victim = signing.callback_secret(signing_secret, "https://victim.example/hook")
    assert victim == signing.callback_secret(signing_secret, "https://VICTIM.example:443/x?y")
    assert victim != signing.callback_secret(signing_secret, "https://attacker.example/hook")
    assert victim != signing.callback_secret(signing_secret, "http://victim.example/hook")
    assert victim != signing.callback_secret(signing.new_secret(), "https://victim.example/hook")
    assert victim.startswith("whsec_")
    assert victim != signing_secret
    signing.secret_key(victim)  # a valid Standard Webhooks secret
    now = int(time.time())
    headers = signing.webhook_headers((victim,), "d1", now, VECTOR_BODY)
    standardwebhooks.Webhook(victim).verify(VECTOR_BODY, headers)
    attacker = signing.callback_secret(signing_secret, "https://attacker.example/hook")
    stolen = signing.webhook_headers((attacker,), "d1", now, VECTOR_BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(victim).verify(VECTOR_BODY, stolen)


def test_the_callback_secret_derivation_is_the_documented_one() -> None:
    """HMAC-SHA256 keyed with the signing secret's key over the context and the origin."""
    import base64
    import hmac

    signing_secret = VECTOR_SECRET + "AAAAAAAA"
    key = base64.b64decode(signing_secret.removeprefix("whsec_"))
    message = b"hookgate.callback-origin:https://victim.example:443"
    expected = "whsec_" + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    assert signing.callback_secret(signing_secret, "https://victim.example/hook") == expected


def test_tokens_are_bound_to_their_purpose() -> None:
    token = signing.dumps_token("s3cret", signing.CALLBACK_SALT, {"run_id": "r"})
    assert signing.loads_token("s3cret", signing.CALLBACK_SALT, token) == {"run_id": "r"}
    with pytest.raises(errors.Forbidden, match="invalid token"):
        signing.loads_token("s3cret", signing.TRIGGER_SALT, token)
    with pytest.raises(errors.Forbidden, match="invalid token"):
        signing.loads_token("other", signing.CALLBACK_SALT, token)


def test_a_new_secret_has_the_standard_webhooks_shape() -> None:
    """``whsec_`` and 24 random bytes in base64, as Svix issues them."""
    secret = signing.new_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
    assert len(signing.secret_key(secret)) == 24
    assert secret != signing.new_secret()
