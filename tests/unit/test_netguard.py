"""The outbound guard, checked against the guard functions only: nothing here opens a socket."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import abc

from gateway import errors, netguard
from gateway.settings import load_settings

BLOCKED = {
    "127.0.0.1": "loopback",
    "10.0.0.8": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "169.254.1.1": "link-local",
    "169.254.169.254": "metadata",
    "100.64.0.1": "CGNAT",
    "224.0.0.1": "multicast",
    "0.0.0.0": "reserved",
    "240.0.0.1": "reserved",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "::ffff:127.0.0.1": "loopback",
}


@pytest.mark.parametrize(("address", "kind"), BLOCKED.items())
def test_refuses_internal_addresses(address: str, kind: str) -> None:
    reason = netguard.refusal_reason(address)
    assert reason is not None
    assert kind.lower() in reason.lower()


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_allows_public_addresses(address: str) -> None:
    assert netguard.refusal_reason(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/x",
        "http://192.168.0.10:8080/hook",
        "http://localhost/hook",
        "http://app.localhost/hook",
        "http://[::1]/hook",
        "http://127.0.0.1/hook",
    ],
)
def test_check_url_refuses_private_targets_unless_allowed(url: str) -> None:
    with pytest.raises(errors.Unprocessable, match="blocked"):
        netguard.check_url(url, allow_private=False)
    assert netguard.check_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://metadata.google.internal/x"]
)
def test_metadata_is_refused_even_when_private_networks_are_allowed(url: str) -> None:
    with pytest.raises(errors.Unprocessable, match="metadata"):
        netguard.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "example.com/hook", "http://", "http://x:99999/", ""]
)
def test_check_url_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(errors.Unprocessable):
        netguard.check_url(url, allow_private=True)


def test_check_url_accepts_public_https() -> None:
    url = "https://hooks.example.com/in?token=abc"
    assert netguard.check_url(url, allow_private=False) == url


class FixedResolver(abc.AbstractResolver):
    """Answers every name with fixed addresses, as if DNS had returned them."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[abc.ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_a_name_that_resolves_inside() -> None:
    guarded = netguard.GuardedResolver(allow_private=False, inner=FixedResolver("127.0.0.1"))
    with pytest.raises(OSError, match="loopback"):
        await guarded.resolve("innocent.example.com", 80)


async def test_resolver_keeps_only_public_addresses() -> None:
    inner: Any = FixedResolver("10.0.0.1", "93.184.216.34")
    guarded = netguard.GuardedResolver(allow_private=False, inner=inner)
    [kept] = await guarded.resolve("mixed.example.com", 443)
    assert kept["host"] == "93.184.216.34"


async def test_resolver_allows_loopback_in_local_mode_but_never_metadata() -> None:
    local = netguard.GuardedResolver(allow_private=True, inner=FixedResolver("127.0.0.1"))
    assert len(await local.resolve("localhost", 80)) == 1
    metadata = netguard.GuardedResolver(allow_private=True, inner=FixedResolver("169.254.169.254"))
    with pytest.raises(OSError, match="metadata"):
        await metadata.resolve("metadata.internal", 80)


def test_allowlist_lets_trusted_hosts_and_networks_through() -> None:
    allow = netguard.Allowlist.parse(["10.20.0.0/16", "hooks.internal", "fd00::/8"])
    for url in ("http://10.20.3.4/x", "http://hooks.internal/x", "http://[fd00::5]/x"):
        assert netguard.check_url(url, allow_private=False, allow=allow) == url
    with pytest.raises(errors.Unprocessable, match="private"):
        netguard.check_url("http://10.21.0.1/x", allow_private=False, allow=allow)
    wide = netguard.Allowlist.parse(["169.254.0.0/16"])
    with pytest.raises(errors.Unprocessable, match="metadata"):
        netguard.check_url("http://169.254.169.254/x", allow_private=False, allow=wide)


async def test_resolver_honours_the_allowlist() -> None:
    allow = netguard.Allowlist.parse(["10.20.0.0/16", "hooks.internal"])
    by_network = netguard.GuardedResolver(
        allow_private=False, allow=allow, inner=FixedResolver("10.20.1.1", "10.99.1.1")
    )
    assert [r["host"] for r in await by_network.resolve("anything.example", 80)] == ["10.20.1.1"]
    by_name = netguard.GuardedResolver(
        allow_private=False, allow=allow, inner=FixedResolver("192.168.7.7")
    )
    assert len(await by_name.resolve("hooks.internal", 80)) == 1


def test_allowed_targets_setting() -> None:
    config = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
    settings = load_settings(config, {"GATEWAY_ALLOWED_TARGETS": "10.0.0.0/8, hooks.internal"})
    assert settings.allowed_targets == ("10.0.0.0/8", "hooks.internal")
