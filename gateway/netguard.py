"""Outbound URLs are untrusted input: refuse targets inside the gateway's own network.

Two layers share one rule, ``Policy.refusal``, over one classification, ``classify``.
``check_url`` runs when a URL is registered: it parses the URL exactly as the HTTP client will
(yarl applies NFKC and IDNA, so fullwidth digits become ``127.0.0.1``), checks that host and
answers a clear 422. ``GuardedConnector`` runs on every connection, IP literals included: it
checks each address before connecting and the connected peer before the request is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import yarl

from gateway import errors

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest

    from gateway.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_METADATA_NAMES = {
    "metadata",
    "metadata.google.internal",
    "metadata.amazonaws.com",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
}
_METADATA_IPS = {
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS pod identity
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure WireServer
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
}
# Ranges refused unless private networks are allowed; written out so the rule does not depend on
# which Python release's view of the IANA special-purpose registries is installed.
_SPECIAL_RANGES = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "reserved address"),  # "this network": 0.0.0.0 reaches the local host
        ("10.0.0.0/8", "private address"),
        ("100.64.0.0/10", "shared (CGNAT) address"),
        ("127.0.0.0/8", "loopback address"),
        ("169.254.0.0/16", "link-local address"),
        ("172.16.0.0/12", "private address"),
        ("192.0.0.0/24", "special-purpose address"),
        ("192.0.2.0/24", "documentation address"),
        ("192.88.99.0/24", "reserved address"),  # the retired 6to4 relay anycast
        ("192.168.0.0/16", "private address"),
        ("198.18.0.0/15", "benchmarking address"),
        ("198.51.100.0/24", "documentation address"),
        ("203.0.113.0/24", "documentation address"),
        ("224.0.0.0/4", "multicast address"),
        ("240.0.0.0/4", "reserved address"),
        ("::1/128", "loopback address"),
        ("64:ff9b:1::/48", "NAT64 local-use address"),
        ("::/8", "reserved address"),
        ("100::/64", "reserved address"),
        ("2001::/23", "special-purpose address"),
        ("2001:db8::/32", "documentation address"),
        ("fc00::/7", "private address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
        ("ff00::/8", "multicast address"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Why an address is not a public destination; ``always``: no configuration allows it."""

    reason: str
    always: bool = False


def classify(address: str | Address) -> Verdict | None:
    """Why ``address`` is not a public destination, or None when it is one.

    An IPv4-mapped address is the IPv4 host itself. 6to4, NAT64, Teredo and the old
    IPv4-compatible forms that embed a non-public IPv4 address can never be delivered
    legitimately, so they are refused whatever the configuration.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if ip in _METADATA_IPS:
        return Verdict("cloud metadata address", always=True)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return classify(ip.ipv4_mapped)
        embedded = _embedded_ipv4(ip)
        for form, ipv4 in embedded:
            inner = classify(ipv4)
            # A local-use NAT64 prefix may translate private addresses; never metadata.
            if inner is not None and (inner.always or ip not in _NAT64_LOCAL):
                return Verdict(f"{form} address embedding {ipv4} ({inner.reason})", always=True)
        if embedded and (ip in _NAT64 or ip.sixtofour is not None):
            return None
    for network, reason in _SPECIAL_RANGES:
        if ip in network:
            return Verdict(reason)
    if not ip.is_global:
        return Verdict("reserved address")
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses a transition form carries, each with the form's name."""
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo", client), ("Teredo", server)]
    if ip in _NAT64:
        return [("NAT64", _rfc6052_ipv4(ip, 96))]
    if ip in _NAT64_LOCAL:  # the operator's prefix length is unknown: try each RFC 6052 layout
        return [("NAT64", _rfc6052_ipv4(ip, length)) for length in (48, 56, 64, 96)]
    if ip in _IPV4_TRANSLATED:
        return [("IPv4-translated", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are not IPv4 addresses
        return [("IPv4-compatible", ipaddress.IPv4Address(int(ip)))]
    return []


def _rfc6052_ipv4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address after a NAT64 prefix of ``prefix_length`` bits (bits 64-71 skipped)."""
    packed = ip.packed
    if prefix_length == 96:
        return ipaddress.IPv4Address(packed[12:16])
    return ipaddress.IPv4Address((packed[prefix_length // 8 : 8] + packed[9:])[:4])


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
                hosts.add(_normalised_name(entry.strip()))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: Address | None = None) -> bool:
        if host.rstrip(".") in self.hosts:
            return True
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


NOTHING_ALLOWED = Allowlist()


def _normalised_name(name: str) -> str:
    """A host name as yarl writes it in a URL (lower case, IDNA), so allow-list entries match."""
    try:
        host = yarl.URL.build(scheme="http", host=name).raw_host
    except (ValueError, TypeError):
        host = None
    return (host or name).rstrip(".").lower()


@dataclasses.dataclass(frozen=True)
class Policy:
    """The configured outbound policy: the local-development switch and the allow-list."""

    allow_private: bool
    allow: Allowlist = NOTHING_ALLOWED

    @classmethod
    def for_settings(cls, settings: Settings) -> Policy:
        return _policy(settings.allow_private_networks, settings.allowed_targets)

    def refusal(self, host: str, address: Address | None) -> str | None:
        """Why sending to ``host`` (at ``address``, when known) is refused, or None.

        Registration knows the address only for an IP literal; connect time always knows it.
        """
        name = host.rstrip(".")
        if name in _METADATA_NAMES:
            return "cloud metadata host"
        if address is not None:
            verdict = classify(address)
        elif name in _LOCAL_NAMES or name.endswith(".localhost"):
            verdict = Verdict("loopback address")
        else:
            verdict = None
        if verdict is None:
            return None
        if not verdict.always and (self.allow_private or self.allow.allows(name, address)):
            return None
        return verdict.reason

    def check_url(self, url: str) -> str:
        """The URL as it will be sent; raise ``Unprocessable`` with the reason it is refused."""
        target = parse_target(url)
        host = target.raw_host or ""
        reason = self.refusal(host, host_address(host))
        if reason is not None:
            raise errors.Unprocessable(f"webhook host blocked: {host}: {reason}")
        return str(target)


@functools.lru_cache(maxsize=8)
def _policy(allow_private: bool, allowed_targets: tuple[str, ...]) -> Policy:
    return Policy(allow_private, Allowlist.parse(allowed_targets))


def parse_target(url: str) -> yarl.URL:
    """Parse ``url`` as aiohttp will; refuse what parsers or resolvers could read differently."""
    if not isinstance(url, str) or not url:
        raise errors.Unprocessable("webhook URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise errors.Unprocessable(f"webhook URL too long (max {MAX_URL_LENGTH} characters)")
    if " " in url or not url.isprintable():
        raise errors.Unprocessable(
            "invalid webhook URL: it contains whitespace or control characters "
            "(percent-encode them)"
        )
    try:
        target = yarl.URL(url)
        port = target.port
    except ValueError as exc:
        raise errors.Unprocessable(f"invalid webhook URL: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise errors.Unprocessable("webhook URL must use http or https")
    if not target.raw_host:
        raise errors.Unprocessable("webhook URL has no host")
    if port == 0:
        raise errors.Unprocessable("webhook URL has an invalid port")
    if len(str(target)) > MAX_URL_LENGTH:
        raise errors.Unprocessable(f"webhook URL too long (max {MAX_URL_LENGTH} characters)")
    return target


def host_address(host: str) -> Address | None:
    """The address an IP-literal host names, or None for a DNS name.

    A host that is neither a canonical IP address nor a valid DNS name is refused: numeric
    forms such as ``2130706433``, ``127.1`` or ``0x7f.0.0.1`` are read as IP addresses by the
    system resolver, and a host with ``%``, spaces or backslashes is read differently by
    different parsers.
    """
    if "%" not in host:
        try:
            return ipaddress.ip_address(host)
        except ValueError:
            pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 254 or not all(_LABEL.fullmatch(label) for label in labels):
        raise errors.Unprocessable(f"invalid webhook URL: {host!r} is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise errors.Unprocessable(
            f"webhook host blocked: {host!r} is a numeric address in a non-canonical form; "
            "write IPv4 as four decimal numbers (a.b.c.d)"
        )
    return None


def check_url(url: str, *, allow_private: bool, allow: Allowlist = NOTHING_ALLOWED) -> str:
    """Validate a callback URL; return it as the client will send it (host normalised)."""
    return Policy(allow_private, allow).check_url(url)


def check_callback(url: str, settings: Settings) -> str:
    """``check_url`` under the configured policy: the local-dev switch and the allow-list."""
    return Policy.for_settings(settings).check_url(url)


class TargetRefused(OSError):
    """A connection the outbound policy refuses; aiohttp reports it as a failed connection."""


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that applies the policy to every address it connects to.

    aiohttp skips the resolver for IP-literal hosts, so the check sits where every
    connection is made: the addresses are filtered before connecting, and the connected
    socket's peer is checked again before a byte of the request is written.
    """

    def __init__(self, policy: Policy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        host = req.url.raw_host or ""
        allowed, reasons = [], []
        for addr_info in addr_infos:
            address = str(addr_info[4][0])
            reason = self._refusal(host, address)
            if reason is None:
                allowed.append(addr_info)
            else:
                reasons.append(reason)
        if not allowed:
            refused = TargetRefused(f"refused to connect to {'; '.join(reasons) or host}")
            raise client_error(req.connection_key, refused)
        transport, protocol = await super()._wrap_create_connection(
            *args,
            addr_infos=allowed,
            req=req,
            timeout=timeout,
            client_error=client_error,
            **kwargs,
        )
        peer = transport.get_extra_info("peername")
        reason = self._refusal(host, str(peer[0])) if peer else f"{host}: unknown peer address"
        if reason is not None:
            transport.abort()
            raise client_error(req.connection_key, TargetRefused(f"refused to connect to {reason}"))
        return transport, protocol

    def _refusal(self, host: str, address: str) -> str | None:
        reason = self.policy.refusal(host, ipaddress.ip_address(address.split("%", 1)[0]))
        if reason is None:
            return None
        return f"{address}: {reason}" if host == address else f"{host} ({address}): {reason}"
