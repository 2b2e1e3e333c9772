"""The Host rule on its own, over many spellings, and how ``allowed_hosts`` is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import errors
from gateway.crosssite import host_allowed, valid_host_entry
from gateway.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
LOOPBACK_NAMES = ("localhost", "localhost:8080", "LocalHost.", "127.0.0.1", "127.3.4.5:1", "[::1]")
REBOUND_NAMES = (
    "evil.example",
    "evil.example:8080",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "[::1]evil",
    "2130706433",
    "0177.0.0.1",
    "localhost:80 evil",
    "localhost:8080:9090",
    "a/b",
    "",
)


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "::1"])
def test_a_loopback_bind_serves_only_loopback_names(bind: str) -> None:
    for name in LOOPBACK_NAMES:
        assert host_allowed(name, bind, ()), name
    for name in REBOUND_NAMES:
        assert not host_allowed(name, bind, ()), name


def test_allowed_hosts_are_added_to_the_loopback_names() -> None:
    allowed = ("hooks.example.com", "[2001:db8::1]", "10.0.0.7")
    for name in ("hooks.example.com", "HOOKS.example.com.:443", "[2001:db8::1]:80", "10.0.0.7"):
        assert host_allowed(name, "127.0.0.1", allowed), name
        assert host_allowed(name, "0.0.0.0", allowed), name
    assert host_allowed("localhost", "0.0.0.0", allowed)
    for name in ("evil.example", "sub.hooks.example.com", "10.0.0.8"):
        assert not host_allowed(name, "0.0.0.0", allowed), name
    assert host_allowed("evil.example", "127.0.0.1", ("*",))


def test_a_non_loopback_bind_without_allowed_hosts_serves_any_name() -> None:
    for bind in ("0.0.0.0", "::", "10.1.2.3", "gateway.internal"):
        assert host_allowed("10.1.2.3:8080", bind, ())
        assert host_allowed("anything.example", bind, ())
        assert not host_allowed("a/b", bind, ())


def test_allowed_hosts_come_from_the_file_or_the_environment() -> None:
    settings = load_settings(CONFIG, {"GATEWAY_ALLOWED_HOSTS": " hooks.example.com, [::2] ,"})
    assert settings.allowed_hosts == ("hooks.example.com", "[::2]")
    assert load_settings(CONFIG, {}).allowed_hosts == ()


@pytest.mark.parametrize(
    "entry", ["https://hooks.example.com", "hooks.example.com:8443", "a b", "*.example.com"]
)
def test_an_allowed_host_with_scheme_port_or_pattern_stops_start_up(entry: str) -> None:
    assert not valid_host_entry(entry)
    with pytest.raises(errors.ConfigError, match="allowed_hosts"):
        load_settings(CONFIG, {"GATEWAY_ALLOWED_HOSTS": entry})
