"""An install's own secrets: generated once beside the database (mode 0600), never shared with
another install; public development secrets are named, refused off loopback."""

from __future__ import annotations

import stat
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway import errors, localsecrets, signing
from gateway.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
DEV_SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="


def environ(directory: Path, **extra: str) -> dict[str, str]:
    return {"GATEWAY_DATABASE_URL": f"sqlite:///{directory / 'gateway.db'}", **extra}


def test_the_shipped_config_holds_no_signing_secret() -> None:
    with CONFIG.open("rb") as fh:
        shipped = tomllib.load(fh)
    assert "signing_secret" not in shipped
    assert "secret_key" not in shipped


def test_each_install_generates_its_own_signing_secret_beside_the_database(
    tmp_path: Path,
) -> None:
    first = load_settings(CONFIG, environ(tmp_path / "one"))
    again = load_settings(CONFIG, environ(tmp_path / "one"))
    other = load_settings(CONFIG, environ(tmp_path / "two"))
    assert first.signing_secret == again.signing_secret
    assert first.signing_secret != other.signing_secret
    assert first.signing_secret not in localsecrets.DEVELOPMENT_SECRETS
    signing.secret_key(first.signing_secret)  # a valid whsec_ secret
    path = tmp_path / "one" / localsecrets.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text())["signing_secret"] == first.signing_secret


def test_a_configured_signing_secret_wins_and_writes_nothing(tmp_path: Path) -> None:
    given = signing.new_secret()
    settings = load_settings(CONFIG, environ(tmp_path, GATEWAY_SIGNING_SECRET=given))
    assert settings.signing_secret == given
    assert not (tmp_path / localsecrets.FILE_NAME).exists()


def test_concurrent_first_starts_agree_on_one_value(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        values = set(
            pool.map(
                lambda _: localsecrets.read_or_create(
                    tmp_path, "signing_secret", signing.new_secret
                ),
                range(16),
            )
        )
    assert len(values) == 1


def test_an_unwritable_place_asks_for_the_variable(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(errors.ConfigError, match="set GATEWAY_SIGNING_SECRET"):
        load_settings(CONFIG, environ(blocked))


def test_development_secrets_in_use_are_named(tmp_path: Path) -> None:
    shipped = load_settings(CONFIG, environ(tmp_path))
    assert localsecrets.development_secrets(shipped) == ["flows.github_push.secret"]
    old = load_settings(CONFIG, environ(tmp_path, GATEWAY_SIGNING_SECRET=DEV_SIGNING_SECRET))
    assert localsecrets.development_secrets(old) == ["signing_secret", "flows.github_push.secret"]
    own = shipped.replace(flows={})
    assert localsecrets.development_secrets(own) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "hooks.example.com", "::"])
def test_a_development_secret_is_refused_beyond_loopback(tmp_path: Path, host: str) -> None:
    settings = load_settings(CONFIG, environ(tmp_path)).replace(host=host)
    with pytest.raises(errors.ConfigError, match=f"refusing to listen on {host}"):
        localsecrets.check_development_secrets(settings)
    localsecrets.check_development_secrets(settings.replace(flows={}))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
def test_on_loopback_a_development_secret_is_only_warned_about(tmp_path: Path, host: str) -> None:
    settings = load_settings(CONFIG, environ(tmp_path)).replace(host=host)
    localsecrets.check_development_secrets(settings)
