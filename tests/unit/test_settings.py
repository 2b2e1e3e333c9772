"""Settings: the shipped file, then GATEWAY_* variables; bad values stop start-up with a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import errors, models
from gateway.settings import SVIX_SCHEDULE, load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"


def test_shipped_config_is_runnable_as_is() -> None:
    settings = load_settings(CONFIG, {})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.allow_private_networks is True
    assert settings.retry_schedule == SVIX_SCHEDULE
    assert settings.max_body_bytes == 1024 * 1024
    assert set(settings.flows) >= {"echo", "agent", "chat"}


def test_environment_overrides_the_file() -> None:
    settings = load_settings(
        CONFIG,
        {
            "GATEWAY_HOST": "0.0.0.0",
            "GATEWAY_PORT": "9999",
            "GATEWAY_DATABASE_URL": "sqlite:////tmp/x.db",
            "GATEWAY_API_KEY": "key-1",
            "GATEWAY_RETRY_SCHEDULE": "1,2,4",
            "GATEWAY_ALLOW_PRIVATE_NETWORKS": "false",
            "GATEWAY_SIGNING_SECRET": "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        },
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9999)
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.api_key == "key-1"
    assert settings.retry_schedule == (1.0, 2.0, 4.0)
    assert settings.allow_private_networks is False


def test_gateway_config_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('port = 7001\n[flows.echo]\ntarget = "flows.demo:echo"\n')
    assert load_settings(None, {"GATEWAY_CONFIG": str(other)}).port == 7001
    with pytest.raises(errors.ConfigError, match="not found"):
        load_settings(None, {"GATEWAY_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GATEWAY_PORT", "eighty", "port"),
        ("GATEWAY_RETRY_SCHEDULE", "1,x", "retry_schedule"),
        ("GATEWAY_RETRY_SCHEDULE", "-1", "negative"),
        ("GATEWAY_ALLOW_PRIVATE_NETWORKS", "maybe", "true or false"),
        ("GATEWAY_SIGNING_SECRET", "not base64!", "signing_secret"),
        ("GATEWAY_DATABASE_URL", "mysql://x", "sqlite"),
        ("GATEWAY_RETENTION_DAYS", "-1", "retention_days"),
        ("GATEWAY_EVENT_RETENTION_DAYS", "inf", "event_retention_days"),
        ("GATEWAY_PRUNE_INTERVAL", "nan", "prune_interval"),
        ("GATEWAY_BIN_KEEP_CAPTURES", "0", "bin_keep_captures"),
    ],
)
def test_bad_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        load_settings(CONFIG, {name: value})


def test_retention_takes_fractions_of_a_day() -> None:
    settings = load_settings(CONFIG, {"GATEWAY_RETENTION_DAYS": "0.5"})
    assert (settings.retention_days, settings.rejected_retention_days) == (0.5, 7.0)
    assert load_settings(CONFIG, {}).retention_days == 30.0


def test_secrets_stay_out_of_repr() -> None:
    settings = load_settings(CONFIG, {"GATEWAY_API_KEY": "super-secret-key"})
    assert "super-secret-key" not in repr(settings)
    assert settings.signing_secret not in repr(settings)


def test_ids() -> None:
    assert models.assistant_id("agent") == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    first, second = models.new_id(), models.new_id()
    assert first[14] == "7", "a UUIDv7"
    assert first[:8] <= second[:8], "time-ordered"
