"""The upstream's own URLs in its answers, turned into the proxy's (``redirect_rewrite``).

An upstream that redirects names itself: ``Location: http://10.0.0.5:8080/v1/login``. Relayed
as it is, that sends the client around the proxy, to an address it should not use or cannot
reach. So, as nginx's ``proxy_redirect default`` does, an absolute URL (or a scheme-relative
one, ``//host/...``) in ``Location``, ``Content-Location`` or ``Refresh`` that points at the
upstream (its scheme; its host, in any case; its port, or none when the port is the scheme's
default) and lies under its base path is rewritten to the address the client used: the scheme
it came with, its ``Host`` header, and the proxy's path for that URL, the way in undone (the
base path taken off, a rewrite's prefix put back). Any other URL passes unchanged, relative ones
included: they already resolve against the proxy's address.

Both proxy paths use it: the fast relay from the response parser's header callbacks
(:class:`~ferryman.proxy.headers.DownstreamHead`), the general path on the response's headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from ferryman.http.url import URL
from ferryman.proxy.rewrite import Rewrite

__all__ = ["UpstreamRedirects", "client_host", "relocate"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: A ``Host`` value fit to go in a URL: a name or an IP literal, and a port (RFC 3986 3.2.2).
_HOST: Final = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")
#: A ``Refresh`` value with a URL (HTML's "shared declarative refresh steps"): the delay, a
#: separator, ``url=`` if there is one, a quote if there is one; the URL; its closing quote.
_REFRESH: Final = re.compile(
    rb"(\s*[0-9.]+\s*[;,\s]\s*(?:url\s*=\s*)?)(['\"]?)(.+?)(\2\s*)", re.IGNORECASE | re.DOTALL
)


class UpstreamRedirects:
    """Which URLs are one upstream's, and where they are on the proxy.

    ``scheme``, ``host_header`` (``host[:port]``, the port only when not the default) and
    ``port`` say who the upstream is, ``base_path`` where the endpoint's requests go on it, and
    ``rewrite`` (the endpoint's) which prefix the client's paths had before it was changed.
    """

    __slots__ = ("_authorities", "_base", "_from", "_scheme", "_to")

    def __init__(
        self,
        scheme: str,
        host_header: bytes,
        port: int,
        base_path: bytes = b"",
        rewrite: Rewrite | None = None,
    ) -> None:
        self._scheme = scheme.lower().encode("ascii")
        host = host_header.lower()
        authorities = {host}
        if port == _DEFAULT_PORTS.get(scheme.lower()):
            authorities.add(host + b":%d" % port)  # (the default port written out)
        self._authorities = frozenset(authorities)
        self._base = base_path.rstrip(b"/")
        # The rewrite runs the other way: an upstream path under ``_to`` is ``_from`` on the
        # proxy. No rewrite: every path is its own.
        self._from = rewrite.rfrom.rstrip("/").encode("ascii") if rewrite is not None else b""
        self._to = rewrite.rto.rstrip("/").encode("ascii") if rewrite is not None else b""

    @classmethod
    def for_url(cls, url: URL, rewrite: Rewrite | None = None) -> UpstreamRedirects:
        """The redirects of an endpoint's upstream base URL."""
        port = url.effective_port
        return cls(
            url.scheme,
            url.host_header,
            0 if port is None else port,
            url.raw_path.split(b"?", 1)[0],
            rewrite,
        )

    def proxy_url(self, url: bytes, scheme: str, host: bytes | None) -> bytes | None:
        """``url`` as the client at ``scheme://host`` reaches it through the proxy; ``None``
        when it is not the upstream's. Without a ``host`` (the client sent none that fits in a
        URL) the result is the path alone, which the client resolves against what it used."""
        if url[:2] == b"//":
            rest = url[2:]
            lead = b"//" + host if host is not None else b""
        else:
            scheme_end = url.find(b"://")
            if scheme_end <= 0 or url[:scheme_end].lower() != self._scheme:
                return None
            rest = url[scheme_end + 3 :]
            lead = scheme.encode("ascii") + b"://" + host if host is not None else b""
        authority_end = _end_of(rest)
        if rest[:authority_end].lower() not in self._authorities:
            return None
        path = rest[authority_end:]
        base = self._base
        if base:
            if not _under(path, base):
                return None
            path = path[len(base) :]
        to = self._to
        if _under(path, to):  # (always, without a rewrite)
            path = self._from + path[len(to) :]
        elif self._from and _under(path, self._from):
            return None  # every proxy path there is rewritten elsewhere: none reaches this one
        if path[:1] != b"/":
            path = b"/" + path  # ("", "?q", "#f": the root, its query, its fragment)
        return lead + path


def _end_of(authority: bytes) -> int:
    """Where an authority ends: at the first ``/``, ``?`` or ``#`` (or the end)."""
    end = len(authority)
    for mark in (b"/", b"?", b"#"):
        found = authority.find(mark, 0, end)
        if found >= 0:
            end = found
    return end


def _under(path: bytes, prefix: bytes) -> bool:
    """``path`` is ``prefix`` or below it, segment-wise (``/v1`` holds ``/v1?q``, not ``/v10``)."""
    return path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] in (
        b"",
        b"/",
        b"?",
        b"#",
    )


def client_host(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The client's ``Host``, if it sent one that can go in a URL as it is."""
    for name, value in headers:
        if name.lower() == b"host":
            return value if _HOST.fullmatch(value) else None
    return None


def relocate(value: bytes, locate: Callable[[bytes], bytes | None], refresh: bool) -> bytes:
    """A ``Location``/``Content-Location`` value, or (``refresh``) a ``Refresh`` one, with its
    URL replaced by what ``locate`` makes of it (unchanged when it makes nothing)."""
    if not refresh:
        located = locate(value)
        return value if located is None else located
    match = _REFRESH.fullmatch(value)
    if match is None:
        return value  # a delay alone
    located = locate(match[3])
    if located is None:
        return value
    return match[1] + match[2] + located + match[4]
