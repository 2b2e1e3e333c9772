"""Inbound verifiers as tables: each provider's own signer (where it ships one) against ours.

Signatures come from the providers' libraries when they are on PyPI (``stripe``,
``standardwebhooks``, ``slack_sdk``); GitHub's from its documented algorithm.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import errors, signing, verify
from gateway.settings import load_settings
from tests import needs

# The providers' own signers build the tables below as they are collected: without them this
# module is skipped (a failure under CI), the rest of the suite runs.
stripe = needs.module("stripe")
Webhook = needs.module("standardwebhooks").Webhook
SignatureVerifier = needs.module("slack_sdk.signature").SignatureVerifier

NOW = 1_800_000_000
BODY = b'{"action": "opened", "number": 7, "text": "caf\xc3\xa9"}'
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {
    "github": "gh-webhook-secret",
    "stripe": "whsec_stripe_test_secret_1234",
    "standard": STANDARD_SECRET,
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
}
OTHER_SECRETS = {
    "github": "another-secret",
    "stripe": "whsec_stripe_other_secret_999",
    "standard": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    "slack": "00000000000000000000000000000000",
}


def github_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def stripe_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )
    return {"Stripe-Signature": header}


def standard_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    when = datetime.fromtimestamp(timestamp, UTC)
    signature = Webhook(secret).sign("msg_2Lx8", when, body.decode())
    return {
        "webhook-id": "msg_2Lx8",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def slack_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(timestamp)}


SIGNERS: dict[str, Callable[[str, bytes, int], dict[str, str]]] = {
    "github": github_headers,
    "stripe": stripe_headers,
    "standard": standard_headers,
    "slack": slack_headers,
}
SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "stripe": "Stripe-Signature",
    "standard": "webhook-signature",
    "slack": "X-Slack-Signature",
}
TIMED = ("stripe", "standard", "slack")


def reason(scheme: str, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(verify.VerificationFailed) as failure:
        verify.verify(scheme, SECRETS[scheme], headers, body, now)
    return failure.value.reason


@pytest.mark.parametrize("scheme", verify.SCHEMES)
def test_the_providers_own_signature_verifies(scheme: str) -> None:
    headers = SIGNERS[scheme](SECRETS[scheme], BODY, NOW)
    assert verify.verify(scheme, SECRETS[scheme], headers, BODY, NOW) is None


@pytest.mark.parametrize("scheme", verify.SCHEMES)
def test_header_names_are_case_insensitive(scheme: str) -> None:
    headers = SIGNERS[scheme](SECRETS[scheme], BODY, NOW)
    for variant in (
        {k.lower(): v for k, v in headers.items()},
        {k.upper(): v for k, v in headers.items()},
    ):
        verify.verify(scheme, SECRETS[scheme], variant, BODY, NOW)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    scheme: str
    headers: dict[str, str]
    body: bytes
    now: float
    expected: str


def failing_cases() -> list[Case]:
    cases = []
    for scheme in verify.SCHEMES:
        good = SIGNERS[scheme](SECRETS[scheme], BODY, NOW)
        missing = {k: v for k, v in good.items() if k != SIGNATURE_HEADER[scheme]}
        cases += [
            Case("tampered body", scheme, good, BODY.replace(b"7", b"8"), NOW, "bad signature"),
            Case("one byte more", scheme, good, BODY + b" ", NOW, "bad signature"),
            Case(
                "wrong secret",
                scheme,
                SIGNERS[scheme](OTHER_SECRETS[scheme], BODY, NOW),
                BODY,
                NOW,
                "bad signature",
            ),
            Case("missing header", scheme, missing, BODY, NOW, "missing"),
            Case("no headers at all", scheme, {}, BODY, NOW, "missing"),
            Case(
                "empty signature",
                scheme,
                {**good, SIGNATURE_HEADER[scheme]: ""},
                BODY,
                NOW,
                "missing",
            ),
        ]
    for scheme in TIMED:
        stale = SIGNERS[scheme](SECRETS[scheme], BODY, NOW - 301)
        future = SIGNERS[scheme](SECRETS[scheme], BODY, NOW + 301)
        cases += [
            Case("stale timestamp", scheme, stale, BODY, NOW, "timestamp outside tolerance"),
            Case("future timestamp", scheme, future, BODY, NOW, "timestamp outside tolerance"),
        ]
    slack_good = SIGNERS["slack"](SECRETS["slack"], BODY, NOW)
    standard_good = SIGNERS["standard"](SECRETS["standard"], BODY, NOW)
    stripe_good = SIGNERS["stripe"](SECRETS["stripe"], BODY, NOW)
    digest = stripe_good["Stripe-Signature"].split("v1=")[1]
    cases += [
        Case(
            "github sha1 only",
            "github",
            {"X-Hub-Signature": "sha1=abc"},
            BODY,
            NOW,
            "missing X-Hub-Signature-256",
        ),
        Case(
            "github without sha256=",
            "github",
            {"X-Hub-Signature-256": "abc"},
            BODY,
            NOW,
            "malformed",
        ),
        Case(
            "stripe without t",
            "stripe",
            {"Stripe-Signature": f"v1={digest}"},
            BODY,
            NOW,
            "malformed",
        ),
        Case(
            "stripe without v1",
            "stripe",
            {"Stripe-Signature": f"t={NOW},v0={digest}"},
            BODY,
            NOW,
            "malformed",
        ),
        Case(
            "stripe timestamp not a number",
            "stripe",
            {"Stripe-Signature": f"t=soon,v1={digest}"},
            BODY,
            NOW,
            "malformed Stripe-Signature t: expected Unix seconds",
        ),
        Case(
            "stripe signature moved to another timestamp",
            "stripe",
            {"Stripe-Signature": f"t={NOW + 1},v1={digest}"},
            BODY,
            NOW,
            "bad signature",
        ),
        Case(
            "slack without timestamp",
            "slack",
            {"X-Slack-Signature": slack_good["X-Slack-Signature"]},
            BODY,
            NOW,
            "missing X-Slack-Request-Timestamp",
        ),
        Case(
            "slack with another version",
            "slack",
            {**slack_good, "X-Slack-Signature": "v1=" + "0" * 64},
            BODY,
            NOW,
            "malformed",
        ),
        Case(
            "standard with another id",
            "standard",
            {**standard_good, "webhook-id": "msg_other"},
            BODY,
            NOW,
            "bad signature",
        ),
        Case(
            "standard without id",
            "standard",
            {k: v for k, v in standard_good.items() if k != "webhook-id"},
            BODY,
            NOW,
            "missing webhook-id",
        ),
        Case(
            "standard with garbage entries only",
            "standard",
            {**standard_good, "webhook-signature": "garbage v1,@@@ v1a,xyz"},
            BODY,
            NOW,
            "bad signature",
        ),
        Case(
            "github with another algorithm",
            "github",
            {"X-Hub-Signature-256": "sha1=" + "0" * 40},
            BODY,
            NOW,
            "malformed X-Hub-Signature-256 header: expected sha256=<hex>",
        ),
        Case(
            "slack timestamp not a number",
            "slack",
            {**slack_good, "X-Slack-Request-Timestamp": "soon"},
            BODY,
            NOW,
            "malformed X-Slack-Request-Timestamp: expected Unix seconds",
        ),
        Case(
            "standard signature with characters outside base64",
            "standard",
            {**standard_good, "webhook-signature": standard_good["webhook-signature"] + "!"},
            BODY,
            NOW,
            "bad signature",
        ),
        Case(
            "svix names without an id",
            "standard",
            {
                k.replace("webhook", "svix"): v
                for k, v in standard_good.items()
                if k != "webhook-id"
            },
            BODY,
            NOW,
            "missing svix-id header",
        ),
        Case(
            "standard timestamp not a number",
            "standard",
            {**standard_good, "webhook-timestamp": "yesterday"},
            BODY,
            NOW,
            "malformed webhook-timestamp",
        ),
    ]
    return cases


@pytest.mark.parametrize("case", failing_cases(), ids=lambda case: f"{case.scheme}: {case.name}")
def test_bad_requests_fail_with_a_clear_reason(case: Case) -> None:
    assert case.expected in reason(case.scheme, case.headers, case.body, case.now)


@pytest.mark.parametrize("scheme", TIMED)
@pytest.mark.parametrize("offset", [-300, 300])
def test_the_tolerance_is_300_seconds_either_way(scheme: str, offset: int) -> None:
    headers = SIGNERS[scheme](SECRETS[scheme], BODY, NOW + offset)
    verify.verify(scheme, SECRETS[scheme], headers, BODY, NOW)


def test_github_has_no_timestamp_so_old_signatures_still_verify() -> None:
    headers = github_headers(SECRETS["github"], BODY, NOW)
    verify.verify("github", SECRETS["github"], headers, BODY, NOW + 10 * 86400)


def test_stripe_accepts_any_of_several_v1_signatures() -> None:
    """During a secret roll Stripe signs with both secrets: one v1 per secret."""
    ours = stripe_headers(SECRETS["stripe"], BODY, NOW)["Stripe-Signature"]
    theirs = stripe_headers(OTHER_SECRETS["stripe"], BODY, NOW)["Stripe-Signature"]
    rolled = f"{theirs},v1={ours.split('v1=')[1]},v0=deadbeef"
    verify.verify("stripe", SECRETS["stripe"], {"Stripe-Signature": rolled}, BODY, NOW)
    assert stripe.WebhookSignature.verify_header(BODY, rolled, SECRETS["stripe"], tolerance=None)


def test_stripe_keys_with_the_secret_string_not_its_base64() -> None:
    """Stripe's ``whsec_…`` is used as is, unlike Standard Webhooks' (a classic mix-up)."""
    verify.verify("stripe", STANDARD_SECRET, stripe_headers(STANDARD_SECRET, BODY, NOW), BODY, NOW)
    decoded_key = signing.secret_key(STANDARD_SECRET)
    digest = hmac.new(decoded_key, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    header = {"Stripe-Signature": f"t={NOW},v1={digest}"}
    with pytest.raises(verify.VerificationFailed, match="bad signature"):
        verify.verify("stripe", STANDARD_SECRET, header, BODY, NOW)


def test_standard_accepts_svix_header_names_and_rotated_signatures() -> None:
    good = standard_headers(STANDARD_SECRET, BODY, NOW)
    svix = {name.replace("webhook-", "svix-"): value for name, value in good.items()}
    verify.verify("standard", STANDARD_SECRET, svix, BODY, NOW)
    other = standard_headers(OTHER_SECRETS["standard"], BODY, NOW)["webhook-signature"]
    rotated = {**good, "webhook-signature": f"v1a,c2lnbmVk {other} {good['webhook-signature']}"}
    verify.verify("standard", STANDARD_SECRET, rotated, BODY, NOW)


def test_standard_matches_the_svix_docs_test_vector() -> None:
    body = b'{"event_type":"ping","data":{"success":true}}'
    headers = {
        "svix-id": "msg_loFOjxBNrRLzqYUf",
        "svix-timestamp": "1731705121",
        "svix-signature": "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0=",
    }
    verify.verify("standard", "whsec_plJ3nmyCDGBKInavdOK15jsl", headers, body, 1731705121 + 10)


def test_a_flow_without_a_secret_fails_closed() -> None:
    headers = github_headers("", BODY, NOW)
    with pytest.raises(verify.VerificationFailed) as refused:
        verify.verify("github", "", headers, BODY, NOW)
    assert refused.value.reason == "no secret is configured for this flow"


def test_unknown_scheme_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown verification scheme"):
        verify.verify("gitlab", "s", {}, BODY, NOW)


@pytest.mark.parametrize(
    ("scheme", "secret", "message"),
    [
        ("github", "", "secret is required"),
        ("standard", "whsec_not base64!", "base64"),
        ("standard", "whsec_c2hvcnQ=", "16 bytes"),
    ],
)
def test_check_secret(scheme: str, secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify.check_secret(scheme, secret)


# signed trigger URLs

TOKEN_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="


def test_a_trigger_token_is_valid_for_its_flow_until_it_expires() -> None:
    token = verify.trigger_token(TOKEN_SECRET, "echo", NOW + 3600)
    claims = signing.loads_token(TOKEN_SECRET, signing.TRIGGER_SALT, token)
    assert claims == {"flow_id": "echo", "exp": NOW + 3600}
    verify.check_trigger_token(TOKEN_SECRET, token, "echo", NOW + 3599)


@pytest.mark.parametrize(
    ("name", "secret", "flow_id", "now", "message"),
    [
        ("expired", TOKEN_SECRET, "echo", NOW + 3600, "Trigger token expired"),
        ("another flow", TOKEN_SECRET, "agent", NOW, "Trigger token was issued for another flow"),
        (
            "another secret",
            "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
            "echo",
            NOW,
            "Invalid trigger token",
        ),
        (
            "no secret configured",
            "",
            "echo",
            NOW,
            "Signed trigger URLs are disabled: no signing_secret is configured",
        ),
    ],
)
def test_trigger_token_refusals(
    name: str, secret: str, flow_id: str, now: float, message: str
) -> None:
    """The whole message: it is the 403's detail."""
    token = verify.trigger_token(TOKEN_SECRET, "echo", NOW + 3600)
    with pytest.raises(errors.Forbidden) as refused:
        verify.check_trigger_token(secret, token, flow_id, now)
    assert refused.value.detail == message


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        verify.trigger_token(TOKEN_SECRET, "echo", NOW + 3600)[:-2] + "AA",
        signing.dumps_token(TOKEN_SECRET, signing.CALLBACK_SALT, {"flow_id": "echo", "exp": NOW}),
        signing.dumps_token(TOKEN_SECRET, signing.TRIGGER_SALT, ["echo"]),  # type: ignore[arg-type]
        signing.dumps_token(TOKEN_SECRET, signing.TRIGGER_SALT, {"flow_id": "echo"}),
        signing.dumps_token(TOKEN_SECRET, signing.TRIGGER_SALT, {"flow_id": "echo", "exp": "x"}),
    ],
    ids=["empty", "garbage", "tampered", "callback salt", "not a dict", "no exp", "odd exp"],
)
def test_forged_or_odd_tokens_are_invalid(token: str) -> None:
    with pytest.raises(errors.Forbidden) as refused:
        verify.check_trigger_token(TOKEN_SECRET, token, "echo", NOW)
    assert refused.value.detail == "Invalid trigger token"


# configuration

FLOW_TOML = """
signing_secret = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="
[flows.github_push]
target = "flows.demo:echo"
verify = "{verify}"
{secret_line}
"""


def config(tmp_path: Path, verify_scheme: str, secret_line: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(FLOW_TOML.format(verify=verify_scheme, secret_line=secret_line))
    return path


def test_the_secret_may_come_from_the_environment_and_stays_out_of_repr(
    tmp_path: Path,
) -> None:
    path = config(tmp_path, "github", 'secret_env = "GITHUB_WEBHOOK_SECRET"')
    settings = load_settings(path, {"GITHUB_WEBHOOK_SECRET": "s3cr3t-from-env"})
    flow = settings.flows["github_push"]
    assert (flow.verify, flow.secret, flow.secret_env) == (
        "github",
        "s3cr3t-from-env",
        "GITHUB_WEBHOOK_SECRET",
    )
    assert "s3cr3t-from-env" not in repr(flow)
    assert "s3cr3t-from-env" not in repr(settings)
    assert "secret='***'" in repr(flow)


@pytest.mark.parametrize(
    ("scheme", "secret_line", "environ", "message"),
    [
        ("github", 'secret_env = "GITHUB_WEBHOOK_SECRET"', {}, "GITHUB_WEBHOOK_SECRET is not set"),
        ("github", "", {}, "secret is required"),
        ("gitlab", 'secret = "x"', {}, "expected one of none, github"),
        ("standard", 'secret = "not-base64!"', {}, "base64"),
        ("github", 'secret = "a"\nsecret_env = "E"', {"E": "b"}, "not both"),
    ],
)
def test_bad_verification_config_stops_loading(
    tmp_path: Path, scheme: str, secret_line: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        load_settings(config(tmp_path, scheme, secret_line), environ)


def test_shipped_config_has_a_verified_flow_and_the_default_dedup_window() -> None:
    shipped = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
    settings = load_settings(shipped, {})
    assert settings.flows["github_push"].verify == "github"
    assert settings.flows["echo"].verify == "none"
    assert settings.dedup_window_seconds == 24 * 3600
    assert load_settings(shipped, {"GATEWAY_DEDUP_WINDOW_SECONDS": "60"}).dedup_window_seconds == 60


def test_a_malformed_signature_entry_does_not_hide_a_good_one() -> None:
    good = SIGNERS["standard"](SECRETS["standard"], BODY, NOW)
    headers = {**good, "webhook-signature": "v1,@@@ " + good["webhook-signature"]}
    verify.verify("standard", SECRETS["standard"], headers, BODY, NOW)


def test_webhook_names_win_when_svix_names_come_too() -> None:
    good = SIGNERS["standard"](SECRETS["standard"], BODY, NOW)
    stale = {"svix-id": "msg_other", "svix-timestamp": "1", "svix-signature": "v1,AAAA"}
    verify.verify("standard", SECRETS["standard"], {**good, **stale}, BODY, NOW)
