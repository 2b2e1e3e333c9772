"""Why a page on another site cannot use hookgate through its visitor's browser.

A browser lets any page send *simple* requests anywhere without asking the server first: a
POST with a ``text/plain``, form or multipart body, or none, and no custom header. It also
lets a page read the answers of a server it reaches under its own name, which DNS rebinding
points at 127.0.0.1. Three rules close both, for the API and ``/inspect`` alike (the
middlewares in ``gateway.api.middleware`` apply them):

- ``host_allowed``: the ``Host`` must name this gateway. On a loopback bind only the loopback
  names are served, unless ``allowed_hosts`` lists more; a rebound name never matches.
- ``cross_site``: a state-changing request that a browser marks as coming from another origin
  (``Origin``, ``Sec-Fetch-Site``) is refused.
- ``declares_json``: a JSON API write must say it is JSON (or carry ``x-api-key``). Either one
  makes a browser ask first (a CORS preflight), which hookgate never grants.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import urlsplit

from aiohttp import hdrs, web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST = "*"
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
_HOST_HEADER = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[^:\[\]/@\s]+))(?::\d{1,5})?")
_HOST_ENTRY = re.compile(r"[^:\[\]/@\s*]+")
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``), brackets allowed."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str | None:
    """The name a ``Host`` header asks for, lowercased, without port, brackets or final dot;
    None when it is not a host name at all."""
    match = _HOST_HEADER.fullmatch(host_header.strip().lower())
    if match is None:
        return None
    return match["ipv6"] or match["name"].rstrip(".")


def valid_host_entry(entry: str) -> bool:
    """An ``allowed_hosts`` entry: ``*``, or a name or address without scheme or port."""
    entry = entry.strip()
    if entry == ANY_HOST:
        return True
    try:
        ipaddress.IPv6Address(entry.strip("[]"))
    except ValueError:
        return _HOST_ENTRY.fullmatch(entry) is not None
    return True


@functools.lru_cache(maxsize=8)
def _names(allowed_hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(entry.strip().strip("[]").rstrip(".").lower() for entry in allowed_hosts)


@functools.lru_cache(maxsize=256)
def host_allowed(host_header: str, bind_host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether to serve a request that names ``host_header``.

    The loopback names are always served. Other names are served when ``allowed_hosts`` lists
    them (or holds ``*``), and, while ``allowed_hosts`` is empty, on a non-loopback bind, where
    callers reach the gateway by whatever name their network gives it (and an API key guards
    it). A loopback bind with no ``allowed_hosts`` serves the loopback names only: a page whose
    name was rebound to 127.0.0.1 sends its own name and is refused."""
    name = host_name(host_header)
    if name is None:
        return False
    names = _names(allowed_hosts)
    if is_loopback(name) or name in names or ANY_HOST in names:
        return True
    return not names and not is_loopback(bind_host)


def cross_site(request: web.Request) -> bool:
    """Whether the browser that sent ``request`` says a page of another origin made it.

    ``Origin`` must name the host the request was sent to (``null`` never does);
    ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` (another port or subdomain) is
    another origin too. Requests without either come from programs, not pages."""
    if request.headers.get("Sec-Fetch-Site", "").lower() in _FOREIGN_FETCH_SITES:
        return True
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return False
    return urlsplit(origin.strip()).netloc.lower() != request.host.lower()


def declares_json(request: web.Request) -> bool:
    """Whether a write's body is declared JSON (``application/json`` or ``…+json``); a write
    without a body passes unless its type is one a page may send (``curl -X POST …/retry``
    sends none, aiohttp ``application/octet-stream``: nothing to interpret either way)."""
    mime = request.content_type.lower() if hdrs.CONTENT_TYPE in request.headers else None
    if not request.body_exists:
        return mime not in SIMPLE_TYPES
    return mime is not None and (
        mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    )
