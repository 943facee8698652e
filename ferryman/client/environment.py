"""Proxy settings from the environment, read the way curl, requests and httpx read them.

``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name the proxy for a scheme; the lower-case
spelling wins over the upper-case one (curl's rule, and the CGI-safe one: a web server turns a
request's ``Proxy:`` header into ``HTTP_PROXY``, never into ``http_proxy``). ``NO_PROXY`` lists
hosts reached directly.

The variables are read with the standard library (``urllib.request.getproxies_environment``,
which also drops an upper-case ``HTTP_PROXY`` under CGI, CVE-2016-1000110). ``NO_PROXY``
matching is ferryman's own, because the standard library's knows neither CIDR ranges nor ports
of IPv6 entries. It follows curl: an entry matches its host and every subdomain of it, a
leading ``.`` (or ``*.``) changes nothing, ``*`` alone matches every host, an IP address or
CIDR range matches IP literals inside it (names are never resolved), and ``host:port`` matches
only that port.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from typing import NamedTuple

from ferryman.http.url import URL

__all__ = [
    "bypasses_proxy",
    "get_environment_no_proxy",
    "get_environment_proxies",
    "proxy_for_url",
]

_PROXY_SCHEMES = ("http", "https", "all")
_SEPARATORS = re.compile(r"[\s,]+")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _environment() -> dict[str, str]:
    # Imported here: urllib.request pulls in http.client and email, which a client that never
    # reads its environment should not pay for at import time.
    from urllib.request import getproxies_environment

    return getproxies_environment()


def get_environment_proxies() -> dict[str, str]:
    """The proxies the environment names, keyed ``"http"``, ``"https"`` and ``"all"``.

    A value without a scheme (``proxy:3128``) means an HTTP proxy, as curl reads it.
    """
    found = _environment()
    proxies: dict[str, str] = {}
    for scheme in _PROXY_SCHEMES:
        value = found.get(scheme, "").strip()
        if value:
            proxies[scheme] = value if "://" in value else f"http://{value}"
    return proxies


def get_environment_no_proxy() -> str | None:
    """``no_proxy`` (or ``NO_PROXY``) as written, or None when unset or empty."""
    return _environment().get("no", "").strip() or None


def proxy_for_url(url: URL, proxies: Mapping[str, str | None], no_proxy: str | None) -> str | None:
    """The proxy ``url`` goes through, or None to connect directly.

    ``proxies`` is looked up by the URL's scheme, then ``"all"``; a key present with the value
    None (or ``""``) means "no proxy for this scheme" and stops the look-up.
    """
    scheme = url.scheme
    proxy = proxies[scheme] if scheme in proxies else proxies.get("all")
    if not proxy:
        return None
    if no_proxy and bypasses_proxy(url, no_proxy):
        return None
    return proxy


class _Rule(NamedTuple):
    """One ``NO_PROXY`` entry: a domain (and its subdomains) or an IP network, maybe a port."""

    domain: str | None
    network: IPNetwork | None
    port: int | None


def bypasses_proxy(url: URL, no_proxy: str) -> bool:
    """True when ``no_proxy`` lists the host (and port) of ``url``."""
    match_all, rules = _parse_no_proxy(no_proxy)
    if match_all:
        return True
    if not rules:
        return False
    host = url.raw_host.decode("ascii").rstrip(".")
    if not host:
        return False
    port = url.effective_port
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for rule in rules:
        if rule.port is not None and rule.port != port:
            continue
        if address is not None:
            network = rule.network
            if network is not None and network.version == address.version and address in network:
                return True
        elif rule.domain is not None:
            domain = rule.domain
            if host == domain or (host.endswith(domain) and host[-len(domain) - 1] == "."):
                return True
    return False


@functools.lru_cache(maxsize=16)
def _parse_no_proxy(no_proxy: str) -> tuple[bool, tuple[_Rule, ...]]:
    """``(matches every host, rules)``; cached, as the same string is checked per request."""
    rules: list[_Rule] = []
    for entry in _SEPARATORS.split(no_proxy.strip()):
        if not entry:
            continue
        if entry == "*":
            return True, ()
        rule = _parse_entry(entry)
        if rule is not None:
            rules.append(rule)
    return False, tuple(rules)


def _parse_entry(entry: str) -> _Rule | None:
    """One entry as a rule; None for an entry that cannot match any host (a bad port...)."""
    host, port = _split_port(entry)
    if port == -1:
        return None
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        pass
    else:
        return _Rule(None, network, port)
    if host.startswith("*."):
        host = host[2:]
    domain = host.lstrip(".").rstrip(".").lower()
    if not domain or "/" in domain or "*" in domain:
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return _Rule(domain, None, port)


def _split_port(entry: str) -> tuple[str, int | None]:
    """``(host, port)`` of an entry; port None when absent, -1 when unusable."""
    if entry.startswith("["):  # [v6] or [v6]:port
        close = entry.find("]")
        if close == -1:
            return entry, -1
        host, rest = entry[1:close], entry[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return host, -1
        return host, _port_number(rest[1:])
    if entry.count(":") == 1:  # more than one colon is a bare IPv6 address (or range)
        host, _, port = entry.partition(":")
        return host, _port_number(port)
    return entry, None


def _port_number(text: str) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    return -1
