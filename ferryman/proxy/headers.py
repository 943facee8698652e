"""What a proxy changes in the headers it relays, shared by both of ferryman's proxy paths.

Works on raw ``(name, value)`` byte pairs as they came off the wire, so the fast path never
builds a :class:`~ferryman.http.headers.Headers` and the names keep the case the client used.

RFC 9110 section 7.6.1: a proxy removes the hop-by-hop headers (``Connection`` and every header
it names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, and, by
long-standing practice, every ``Proxy-*`` header) and frames the message again itself. It then
says what it is: ``Via`` (section 7.6.3) and the de-facto ``X-Forwarded-For/-Proto/-Host``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

__all__ = [
    "HOP_BY_HOP",
    "HeaderRules",
    "RawHeaders",
    "downstream_headers",
    "upstream_headers",
]

RawHeaders: TypeAlias = list[tuple[bytes, bytes]]

#: Lower-case names a proxy never relays (besides those ``Connection`` names, and ``proxy-*``).
HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
VIA_VALUE: Final = b"1.1 ferryman"
#: Names each pass treats apart from plain copying, so plain headers cost one set look-up.
_UPSTREAM_SPECIAL: Final = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"via",
}
_DOWNSTREAM_SPECIAL: Final = HOP_BY_HOP | {b"via", b"content-length"}


class HeaderRules:
    """Headers an endpoint adds to, or removes from, what it relays in one direction.

    ``remove`` names are matched without regard to case; ``add`` replaces any header of the same
    name the message carried, so a configured value is never doubled by the client's own.
    """

    __slots__ = ("add", "remove")

    def __init__(self, add: Iterable[tuple[str, str]] = (), remove: Iterable[str] = ()) -> None:
        self.add: tuple[tuple[bytes, bytes], ...] = tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in add
        )
        self.remove: frozenset[bytes] = frozenset(
            name.lower().encode("latin-1") for name in remove
        ) | frozenset(name.lower() for name, _ in self.add)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def __repr__(self) -> str:
        return f"HeaderRules(add={self.add!r}, remove={sorted(self.remove)!r})"


NO_RULES: Final = HeaderRules()


#: Connection values that name no other header (the common case: skip the second pass).
_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close", b"upgrade", b"keep-alive, upgrade"})


def _named_by_connection(values: list[bytes]) -> frozenset[bytes]:
    """The header names ``Connection`` lists, beyond keep-alive/close/upgrade."""
    tokens: set[bytes] = set()
    for value in values:
        if value.lower() not in _PLAIN_CONNECTION:
            tokens.update(token.strip().lower() for token in value.split(b","))
    tokens -= {b"", b"keep-alive", b"close", b"upgrade"}
    return frozenset(tokens)


def _drop_named(headers: RawHeaders, named: frozenset[bytes]) -> RawHeaders:
    return [(name, value) for name, value in headers if name.lower() not in named]


def upstream_headers(
    raw: Sequence[tuple[bytes, bytes]],
    *,
    host: bytes | None,
    client_ip: str | None,
    scheme: str,
    rules: HeaderRules = NO_RULES,
    upgrade: bytes | None = None,
) -> tuple[RawHeaders, bytes | None]:
    """The headers to send upstream, and the client's ``Host`` (``None`` if it sent none).

    ``host`` replaces the client's ``Host``; ``None`` keeps it (``preserve_host``). Framing
    headers are removed: the caller frames the body it actually sends. ``upgrade`` keeps an
    ``Upgrade`` handshake (a WebSocket) going through: the caller passes the client's Upgrade
    value and gets ``Connection: upgrade`` and that ``Upgrade`` back in the list.
    """
    remove = rules.remove
    headers: RawHeaders = []
    client_host: bytes | None = None
    forwarded_for: bytes | None = None
    via: bytes | None = None
    connection: list[bytes] | None = None
    for name, value in raw:
        lower = name.lower()
        if lower in _UPSTREAM_SPECIAL:
            if lower == b"host":
                client_host = value
                if host is None:
                    headers.append((name, value))
            elif lower == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            elif lower == b"via":
                via = value if via is None else via + b", " + value
            elif lower == b"connection":
                connection = [value] if connection is None else [*connection, value]
            # the rest: hop-by-hop, framing, and X-Forwarded-Proto/-Host, which this hop sets
            continue
        if lower[:6] == b"proxy-" or lower in remove:
            continue
        headers.append((name, value))
    if connection is not None:
        named = _named_by_connection(connection)
        if named:
            headers = _drop_named(headers, named)
    if host is not None:
        headers.insert(0, (b"Host", host))
    if client_ip is not None:
        ip = client_ip.encode("ascii")
        headers.append(
            (b"X-Forwarded-For", ip if forwarded_for is None else forwarded_for + b", " + ip)
        )
    elif forwarded_for is not None:
        headers.append((b"X-Forwarded-For", forwarded_for))
    headers.append((b"X-Forwarded-Proto", b"https" if scheme == "https" else b"http"))
    if client_host is not None:
        headers.append((b"X-Forwarded-Host", client_host))
    headers.append((b"Via", VIA_VALUE if via is None else via + b", " + VIA_VALUE))
    if rules.add:
        headers.extend(rules.add)
    if upgrade is not None:
        headers.append((b"Connection", b"upgrade"))
        headers.append((b"Upgrade", upgrade))
    return headers, client_host


def downstream_headers(
    raw: Sequence[tuple[bytes, bytes]],
    *,
    rules: HeaderRules = NO_RULES,
    keep_length: bool = True,
) -> RawHeaders:
    """The upstream response's headers as the client gets them (framing left to the caller).

    ``keep_length`` keeps ``Content-Length``, which the caller passes when it relays the body
    unchanged (a HEAD or 304 answer keeps the length of the body it does not carry, too).
    """
    remove = rules.remove
    headers: RawHeaders = []
    via: bytes | None = None
    connection: list[bytes] | None = None
    for name, value in raw:
        lower = name.lower()
        if lower in _DOWNSTREAM_SPECIAL:
            if lower == b"via":
                via = value if via is None else via + b", " + value
            elif lower == b"connection":
                connection = [value] if connection is None else [*connection, value]
            elif lower == b"content-length" and keep_length:
                headers.append((name, value))
            continue
        if lower[:6] == b"proxy-" or lower in remove:
            continue
        headers.append((name, value))
    if connection is not None:
        named = _named_by_connection(connection)
        if named:
            headers = _drop_named(headers, named)
    headers.append((b"Via", VIA_VALUE if via is None else via + b", " + VIA_VALUE))
    if rules.add:
        headers.extend(rules.add)
    return headers
