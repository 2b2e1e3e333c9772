"""``hookgate token``: a subprocess prints a signed trigger URL that the gateway's secret opens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway import signing, verify
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gateway.toml"


def hookgate(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_CONFIG": str(CONFIG), **environ})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_token_prints_a_url_whose_token_opens_with_the_signing_secret() -> None:
    before = time.time()
    result = hookgate("token", "echo", "--expires", "1h")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    parts = urlsplit(url)
    settings = load_settings(CONFIG, {})
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        f"{settings.host}:{settings.port}",
        "/api/v1/webhook/echo",
    )
    [token] = parse_qs(parts.query)["token"]
    claims = signing.loads_token(settings.signing_secret, signing.TRIGGER_SALT, token)
    assert claims["flow_id"] == "echo"
    assert before + 3600 - 2 <= claims["exp"] <= time.time() + 3600 + 1
    verify.check_trigger_token(settings.signing_secret, token, "echo", time.time())
    assert settings.signing_secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("expires", "seconds"),
    [("30d", 30 * 86400), ("12h", 12 * 3600), ("90m", 5400), ("3600s", 3600), ("45", 45)],
)
def test_expiry_spellings(expires: str, seconds: int) -> None:
    before = time.time()
    result = hookgate(
        "token",
        "agent",
        "--expires",
        expires,
        "--base-url",
        "https://hooks.example.com/",
        GATEWAY_SIGNING_SECRET="whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://hooks.example.com/api/v1/webhook/agent?token=")
    token = parse_qs(urlsplit(url).query)["token"][0]
    claims = signing.loads_token(
        "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", signing.TRIGGER_SALT, token
    )
    assert_expires_between(claims["exp"], before + seconds, time.time() + seconds)


def test_default_lifetime_is_30_days() -> None:
    before = time.time()
    result = hookgate("token", "echo")
    assert result.returncode == 0, result.stderr
    token = parse_qs(urlsplit(result.stdout.strip()).query)["token"][0]
    secret = load_settings(CONFIG, {}).signing_secret
    claims = signing.loads_token(secret, signing.TRIGGER_SALT, token)
    assert_expires_between(claims["exp"], before + 30 * 86400, time.time() + 30 * 86400)


def assert_expires_between(exp: float, earliest: float, latest: float) -> None:
    """The expiry the command computed lies within the time the command ran, however long a
    busy machine made it take (a whole second either way: the claim may be rounded)."""
    assert earliest - 1 <= exp <= latest + 1


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (("token", "nope"), {}, "unknown flow 'nope'"),
        (("token", "echo", "--expires", "soon"), {}, "expected a duration"),
        (("token", "echo", "--expires", "0h"), {}, "must be positive"),
        (("token", "echo"), {"GATEWAY_SIGNING_SECRET": ""}, "signing_secret"),
    ],
)
def test_refusals_exit_2_with_a_reason(
    args: tuple[str, ...], environ: dict[str, str], message: str
) -> None:
    result = hookgate(*args, **environ)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
