"""``hookgate secret <url>``: a subprocess prints the secret per-run callbacks to that origin carry."""

from __future__ import annotations

import time

import pytest
import standardwebhooks

from gateway import signing
from tests.acceptance.test_cli_token import hookgate


def test_secret_prints_the_origins_callback_secret() -> None:
    signing_secret = signing.new_secret()
    result = hookgate(
        "secret", "HTTP://Receiver.example/hook?x=1", GATEWAY_SIGNING_SECRET=signing_secret
    )
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n"
    assert "http://receiver.example:80" in result.stderr
    assert secret == signing.callback_secret(signing_secret, "http://receiver.example:80/")
    assert signing_secret not in result.stdout + result.stderr
    headers = signing.webhook_headers((secret,), "d1", int(time.time()), b"{}")
    assert standardwebhooks.Webhook(secret).verify(b"{}", headers) == {}


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (("secret", "ftp://x.example/"), {}, "url: expected an absolute http(s) URL"),
        (("secret", "http://x.example/"), {"GATEWAY_SIGNING_SECRET": ""}, "signing_secret"),
    ],
)
def test_refusals_exit_2_with_a_reason(
    args: tuple[str, ...], environ: dict[str, str], message: str
) -> None:
    result = hookgate(*args, **environ)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
