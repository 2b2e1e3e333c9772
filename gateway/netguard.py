"""Outbound URLs are untrusted input: refuse targets inside the gateway's own network.

``check_url`` runs when a URL is registered (a clear 422); ``GuardedResolver`` runs on
every connection after DNS resolution, so a name that resolves to 127.0.0.1 is refused too.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import abc, resolver

from gateway import errors

if TYPE_CHECKING:
    from gateway.settings import Settings

MAX_URL_LENGTH = 2048
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_METADATA_NAMES = {"metadata", "metadata.google.internal", "metadata.amazonaws.com"}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA_IPS = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("169.254.170.2")}


def refusal_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public destination, or None if it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_IPS:
        return "cloud metadata address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT) address"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "reserved address"
    return None


@dataclasses.dataclass(frozen=True)
class Allowlist:
    """Hosts and networks an operator trusts even while private networks are refused."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().rstrip(".").lower())
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host_or_address: str) -> bool:
        if host_or_address.rstrip(".").lower() in self.hosts:
            return True
        try:
            ip = ipaddress.ip_address(host_or_address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


NOTHING_ALLOWED = Allowlist()


def check_url(url: str, *, allow_private: bool, allow: Allowlist = NOTHING_ALLOWED) -> str:
    """Validate a callback URL; raise ``Unprocessable`` with the reason when it is refused."""
    if not isinstance(url, str) or not url:
        raise errors.Unprocessable("webhook URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise errors.Unprocessable(f"webhook URL too long (max {MAX_URL_LENGTH} characters)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.Unprocessable(f"invalid webhook URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise errors.Unprocessable("webhook URL must use http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise errors.Unprocessable("webhook URL has no host")
    if port == 0:
        raise errors.Unprocessable("webhook URL has an invalid port")
    if host in _METADATA_NAMES:
        raise errors.Unprocessable("webhook host blocked: cloud metadata host")
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        reason: str | None = "loopback address"
    else:
        try:
            reason = refusal_reason(host)
        except ValueError:
            reason = None
    if reason == "cloud metadata address" or (
        reason and not allow_private and not allow.allows(host)
    ):
        raise errors.Unprocessable(f"webhook host blocked: {reason}")
    return url


def check_callback(url: str, settings: Settings) -> str:
    """``check_url`` under the configured policy: the local-dev switch and the allow-list."""
    return check_url(
        url,
        allow_private=settings.allow_private_networks,
        allow=_allowlist(settings.allowed_targets),
    )


@functools.lru_cache(maxsize=8)
def _allowlist(entries: tuple[str, ...]) -> Allowlist:
    return Allowlist.parse(entries)


class GuardedResolver(abc.AbstractResolver):
    """Resolves names as aiohttp does, then drops every address the guard refuses."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allow: Allowlist = NOTHING_ALLOWED,
        inner: abc.AbstractResolver | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._allow = allow
        self._inner = inner or resolver.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[abc.ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        trusted_name = self._allow.allows(host)
        allowed = []
        reasons = []
        for result in results:
            reason = refusal_reason(result["host"])
            if reason != "cloud metadata address" and (
                self._allow_private or trusted_name or self._allow.allows(result["host"])
            ):
                reason = None
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(f"{result['host']}: {reason}")
        if not allowed:
            raise OSError(f"refused to connect to {host}: {'; '.join(reasons) or 'no address'}")
        return allowed

    @classmethod
    def for_settings(cls, settings: Settings) -> GuardedResolver:
        return cls(
            allow_private=settings.allow_private_networks,
            allow=_allowlist(settings.allowed_targets),
        )

    async def close(self) -> None:
        await self._inner.close()
