"""The outbound guard, checked against the guard functions only: nothing here opens a socket."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway import errors, netguard
from gateway.settings import load_settings

# address -> (a word of the reason, refused even when private networks are allowed)
REFUSED: dict[str, tuple[str, bool]] = {
    "127.0.0.1": ("loopback", False),
    "127.8.9.10": ("loopback", False),
    "10.0.0.8": ("private", False),
    "172.16.5.4": ("private", False),
    "192.168.1.1": ("private", False),
    "169.254.1.1": ("link-local", False),
    "100.64.0.1": ("CGNAT", False),
    "224.0.0.1": ("multicast", False),
    "0.0.0.0": ("reserved", False),
    "240.0.0.1": ("reserved", False),
    "255.255.255.255": ("reserved", False),
    "192.0.0.1": ("special-purpose", False),
    "192.0.0.170": ("special-purpose", False),
    "192.0.2.1": ("documentation", False),
    "198.18.0.1": ("benchmarking", False),
    "::1": ("loopback", False),
    "::": ("reserved", False),
    "fe80::1": ("link-local", False),
    "fe80::1%eth0": ("link-local", False),
    "fc00::1": ("private", False),
    "fec0::1": ("site-local", False),
    "ff02::1": ("multicast", False),
    "2001:db8::1": ("documentation", False),
    "::ffff:127.0.0.1": ("loopback", False),
    "::ffff:10.1.2.3": ("private", False),
    "64:ff9b:1::808:808": ("NAT64 local-use", False),
    # cloud metadata, in every spelling
    "169.254.169.254": ("metadata", True),
    "169.254.170.2": ("metadata", True),
    "192.0.0.192": ("metadata", True),
    "100.100.100.200": ("metadata", True),
    "fd00:ec2::254": ("metadata", True),
    "::ffff:169.254.169.254": ("metadata", True),
    "64:ff9b:1::a9fe:a9fe": ("metadata", True),
    # transition forms that carry a non-public IPv4 address are never deliverable
    "2002:7f00:1::": ("6to4 address embedding 127.0.0.1 (loopback", True),
    "2002:a00:1::1": ("6to4 address embedding 10.0.0.1 (private", True),
    "2002:a9fe:a9fe::": ("6to4 address embedding 169.254.169.254 (cloud metadata", True),
    "64:ff9b::7f00:1": ("NAT64 address embedding 127.0.0.1 (loopback", True),
    "64:ff9b::c0a8:101": ("NAT64 address embedding 192.168.1.1 (private", True),
    "64:ff9b::a9fe:a9fe": ("NAT64 address embedding 169.254.169.254", True),
    "::7f00:1": ("IPv4-compatible address embedding 127.0.0.1", True),
    "::ffff:0:a00:1": ("IPv4-translated address embedding 10.0.0.1", True),
    # Teredo: client 127.0.0.1 and 10.0.0.1, obfuscated as RFC 4380 writes them
    "2001:0:4136:e378:8000:63bf:80ff:fffe": ("Teredo address embedding 127.0.0.1", True),
    "2001:0:4136:e378:8000:63bf:f5ff:fffe": ("Teredo address embedding 10.0.0.1", True),
    # a public client behind a Teredo server at a private address
    "2001:0:a00:1:8000:63bf:a247:27dd": ("Teredo address embedding 10.0.0.1", True),
    "::2": ("IPv4-compatible address embedding 0.0.0.2", True),
}

PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 (well-known prefix) of 93.184.216.34
]


@pytest.mark.parametrize(("address", "expected"), REFUSED.items())
def test_classify_refuses_internal_addresses(address: str, expected: tuple[str, bool]) -> None:
    words, always = expected
    verdict = netguard.classify(address)
    assert verdict is not None
    assert words in verdict.reason, "the reason a refused URL's 422 gives"
    assert verdict.always is always


def rfc6052(prefix: str, length: int, ipv4: str) -> str:
    """``ipv4`` written after a NAT64 prefix of ``length`` bits, as RFC 6052 section 2.2 lays it
    out: its four octets in order, skipping octet 8 (bits 64-71)."""
    packed = bytearray(ipaddress.IPv6Address(prefix).packed)
    if length == 96:
        packed[12:16] = ipaddress.IPv4Address(ipv4).packed
    else:
        places = [i for i in range(length // 8, 16) if i != 8][:4]
        for place, octet in zip(places, ipaddress.IPv4Address(ipv4).packed, strict=True):
            packed[place] = octet
    return str(ipaddress.IPv6Address(bytes(packed)))


@pytest.mark.parametrize("length", [48, 56, 64, 96])
def test_a_local_use_nat64_prefix_of_any_length_never_reaches_metadata(length: int) -> None:
    """The operator's prefix length is unknown, so every layout is read; private addresses may
    be what the operator translates, the metadata address never is."""
    metadata = rfc6052("64:ff9b:1::", length, "169.254.169.254")
    verdict = netguard.classify(metadata)
    assert verdict is not None
    assert verdict.reason.startswith("NAT64 address embedding 169.254.169.254 (cloud metadata")
    assert verdict.always
    private = netguard.classify(rfc6052("64:ff9b:1::", length, "10.0.0.1"))
    assert private is not None
    assert not private.always


def test_allow_list_entries_match_as_the_client_writes_hosts() -> None:
    allow = netguard.Allowlist.parse(["Hooks.Internal.", "10.1.2.3/8"])
    assert allow.allows("hooks.internal")
    assert allow.allows("hooks.internal.")
    assert allow.allows("x.example", ipaddress.ip_address("10.9.9.9")), "a network, host bits set"
    assert not allow.allows("x.example", ipaddress.ip_address("11.0.0.1"))
    assert not allow.allows("x.example")


@pytest.mark.parametrize("address", PUBLIC)
def test_classify_allows_public_addresses(address: str) -> None:
    assert netguard.classify(address) is None
    assert netguard.classify(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "expected"), REFUSED.items())
def test_the_policy_lets_local_mode_reach_private_but_never_metadata(
    address: str, expected: tuple[str, bool]
) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    strict, local = netguard.Policy(allow_private=False), netguard.Policy(allow_private=True)
    assert strict.refusal("example.com", ip) is not None
    assert (local.refusal("example.com", ip) is not None) is expected[1]


# What the HTTP client reads as 127.0.0.1: yarl applies NFKC and IDNA before connecting.
DISGUISED_LOOPBACK = [
    "http://１２７.０.０.１:8080/hook",  # noqa: RUF001 (fullwidth digits)
    "http://①②⑦.⓪.⓪.①:8080/hook",  # circled digits
    "http://127。0。0。1:8080/hook",  # ideographic full stops
    "http://127．0．0．1:8080/hook",  # noqa: RUF001 (fullwidth full stops)
    "http://１２７。０。０。１:8080/hook",  # noqa: RUF001
]


@pytest.mark.parametrize("url", DISGUISED_LOOPBACK)
def test_check_url_checks_the_host_the_client_will_connect_to(url: str) -> None:
    with pytest.raises(errors.Unprocessable, match=r"blocked: 127\.0\.0\.1: loopback"):
        netguard.check_url(url, allow_private=False)
    assert netguard.check_url(url, allow_private=True) == "http://127.0.0.1:8080/hook"


# Hosts the system resolver reads as an IP address, or parsers read differently: never valid.
NEVER_VALID_HOSTS = [
    "http://0/",
    "http://0:8080/",
    "http://2130706433/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.0.0.0x1/",
    "http://127.0.0.1./",
    "http://１２７.１/",  # noqa: RUF001 (fullwidth, normalised to 127.1)
    "http://a b.example.com/",
    "http://example.com /x",
    "http://exa\tmple.com/",
    "http://example.com\r\n.evil/",
    "http://exa\x00mple.com/",
    "http://example.com\u3000/",
    "http://ex%61mple.com/",
    "http://127.0.0.1%2f@/",
    "http://[fe80::1%25eth0]/",
    "http://example.com\\@127.0.0.1/",
    "http://127.0.0.1\\@example.com/",
    "http://-bad.example.com/",
    "http://a..b/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[::7f00:1]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "http://192.0.0.192/",
    "http://[::ffff:169.254.169.254]/",
]


@pytest.mark.parametrize("url", NEVER_VALID_HOSTS)
def test_check_url_refuses_hosts_that_are_never_delivered(url: str) -> None:
    with pytest.raises(errors.Unprocessable):
        netguard.check_url(url, allow_private=True)
    everything = netguard.Allowlist.parse(["0.0.0.0/0", "::/0"])
    with pytest.raises(errors.Unprocessable):
        netguard.check_url(url, allow_private=False, allow=everything)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/x",
        "http://192.168.0.10:8080/hook",
        "http://localhost/hook",
        "http://app.localhost/hook",
        "http://[::1]/hook",
        "http://127.0.0.1/hook",
        "http://192.0.0.8/hook",
        "http://[::ffff:10.1.2.3]/hook",
    ],
)
def test_check_url_refuses_private_targets_unless_allowed(url: str) -> None:
    with pytest.raises(errors.Unprocessable, match="blocked"):
        netguard.check_url(url, allow_private=False)
    netguard.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/x",
        "http://METADATA.google.internal./x",
        "http://[fd00:ec2::254]/x",
    ],
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


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://hooks.example.com/in?token=abc", "https://hooks.example.com/in?token=abc"),
        ("https://Hooks.Example.COM/in", "https://hooks.example.com/in"),
        ("https://ｈｏｏｋｓ.example.com/in", "https://hooks.example.com/in"),  # noqa: RUF001
        ("https://bücher.example/in", "https://xn--bcher-kva.example/in"),
        ("https://hooks.example.com:443/in", "https://hooks.example.com/in"),
        ("http://93.184.216.34:8080/in", "http://93.184.216.34:8080/in"),
        ("http://[2606:4700:4700::1111]/in", "http://[2606:4700:4700::1111]/in"),
        ("http://my_service.internal.example/in", "http://my_service.internal.example/in"),
    ],
)
def test_check_url_returns_the_url_as_it_will_be_sent(url: str, sent: str) -> None:
    assert netguard.check_url(url, allow_private=False) == sent


def test_allowlist_lets_trusted_hosts_and_networks_through() -> None:
    allow = netguard.Allowlist.parse(["10.20.0.0/16", "Hooks.Internal", "fd00::/8"])
    for url in ("http://10.20.3.4/x", "http://hooks.internal/x", "http://[fd00::5]/x"):
        assert netguard.check_url(url, allow_private=False, allow=allow) == url
    assert netguard.check_url("http://[::ffff:10.20.3.4]/x", allow_private=False, allow=allow)
    with pytest.raises(errors.Unprocessable, match="private"):
        netguard.check_url("http://10.21.0.1/x", allow_private=False, allow=allow)
    wide = netguard.Allowlist.parse(["169.254.0.0/16"])
    with pytest.raises(errors.Unprocessable, match="metadata"):
        netguard.check_url("http://169.254.169.254/x", allow_private=False, allow=wide)


def test_allowlisted_names_are_matched_after_normalisation() -> None:
    allow = netguard.Allowlist.parse(["bücher.internal"])
    url = "http://BÜCHER.internal/x"
    assert netguard.check_url(url, allow_private=False, allow=allow)
    address = ipaddress.ip_address("10.0.0.7")
    assert netguard.Policy(False, allow).refusal("xn--bcher-kva.internal", address) is None


def test_connect_time_refusal_honours_names_networks_and_metadata() -> None:
    """What the connector asks for each address it is about to connect to."""
    allow = netguard.Allowlist.parse(["10.20.0.0/16", "hooks.internal"])
    policy = netguard.Policy(allow_private=False, allow=allow)
    ip = ipaddress.ip_address
    assert policy.refusal("anything.example", ip("10.20.1.1")) is None
    assert policy.refusal("anything.example", ip("10.99.1.1")) == "private address"
    assert policy.refusal("innocent.example.com", ip("127.0.0.1")) == "loopback address"
    assert policy.refusal("hooks.internal", ip("192.168.7.7")) is None
    assert policy.refusal("hooks.internal.", ip("127.0.0.1")) is None
    assert policy.refusal("hooks.internal", ip("169.254.169.254")) == "cloud metadata address"
    assert policy.refusal("anything.example", ip("93.184.216.34")) is None
    local = netguard.Policy(allow_private=True)
    assert local.refusal("localhost", ip("127.0.0.1")) is None
    assert local.refusal("metadata.internal", ip("169.254.169.254")) is not None
    assert local.refusal("metadata.google.internal", ip("93.184.216.34")) == "cloud metadata host"


def test_allowed_targets_setting() -> None:
    config = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
    settings = load_settings(config, {"GATEWAY_ALLOWED_TARGETS": "10.0.0.0/8, hooks.internal"})
    assert settings.allowed_targets == ("10.0.0.0/8", "hooks.internal")
    policy = netguard.Policy.for_settings(settings.replace(allow_private_networks=False))
    assert policy.refusal("hooks.internal", ipaddress.ip_address("192.168.1.1")) is None
    assert policy.refusal("x.example", ipaddress.ip_address("10.1.1.1")) is None
    assert policy.refusal("x.example", ipaddress.ip_address("192.168.1.1")) is not None


async def test_the_connector_reads_an_address_with_a_zone_as_the_address_itself() -> None:
    """A connected peer may carry a zone (``%eth0``): the metadata address stays refused even
    where private networks are allowed, the zone does not disguise it."""
    connector = netguard.GuardedConnector(netguard.Policy(allow_private=True))
    try:
        reason = connector._refusal("fd00:ec2::254%eth0", "fd00:ec2::254%eth0")
        assert reason == "fd00:ec2::254%eth0: cloud metadata address"
        assert connector._refusal("h.example", "fe80::1%eth0") is None, "private is allowed"
        strict = netguard.GuardedConnector(netguard.Policy(allow_private=False))
        assert (
            strict._refusal("localhost", "127.0.0.1") == "localhost (127.0.0.1): loopback address"
        )
        await strict.close()
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("", "webhook URL must be a non-empty string"),
        ("http://h.example/" + "a" * 2048, "webhook URL too long (max 2048 characters)"),
        (
            "http://h.example/a b",
            "invalid webhook URL: it contains whitespace or control characters "
            "(percent-encode them)",
        ),
        ("http:///hook", "webhook URL has no host"),
        ("http://h.example:0/", "webhook URL has an invalid port"),
        ("http://-bad-.example/", "invalid webhook URL: '-bad-.example' is not a valid host name"),
        (
            "http://1.2.3/",
            "webhook host blocked: '1.2.3' is a numeric address in a non-canonical form; "
            "write IPv4 as four decimal numbers (a.b.c.d)",
        ),
        ("http://localhost/", "webhook host blocked: localhost: loopback address"),
        ("http://0.0.0.0/", "webhook host blocked: 0.0.0.0: reserved address"),
    ],
)
def test_a_refused_url_says_exactly_why(url: str, detail: str) -> None:
    """The 422's detail, word for word."""
    with pytest.raises(errors.Unprocessable) as refused:
        netguard.check_url(url, allow_private=False)
    assert refused.value.detail == detail


def test_the_longest_url_and_host_are_accepted() -> None:
    path = "http://h.example/"
    assert netguard.check_url(path + "a" * (2048 - len(path)), allow_private=False)
    host = ".".join(["a" * 63] * 3 + ["b" * 60]) + ".c"  # 254 characters, the most DNS allows
    assert len(host) == 254
    assert netguard.check_url(f"http://{host}/", allow_private=False)
    with pytest.raises(errors.Unprocessable, match="not a valid host name"):
        netguard.check_url(f"http://{host}d/", allow_private=False)  # 255: one too many
    assert netguard.check_url("http://hooks.example./x", allow_private=False), "a trailing dot"


def test_a_zone_does_not_disguise_an_address() -> None:
    verdict = netguard.classify("fd00:ec2::254%eth0")
    assert verdict is not None
    assert verdict.always
