"""What a proxy changes in the headers it relays, shared by both of ferryman's proxy paths.

Works on raw ``(name, value)`` byte pairs as they came off the wire, so the fast path never
builds a :class:`~ferryman.http.headers.Headers` and the names keep the case the client used.

RFC 9110 section 7.6.1: a proxy removes the hop-by-hop headers (``Connection`` and every header
it names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, and, by
long-standing practice, every ``Proxy-*`` header) and frames the message again itself. It then
says what it is: ``Via`` (section 7.6.3) and the de-facto ``X-Forwarded-For/-Proto/-Host``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

__all__ = [
    "HOP_BY_HOP",
    "HeaderRules",
    "RawHeaders",
    "downstream_headers",
    "plain_response_lines",
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


#: How a header name is relayed (see ``_classify``).
_COPY, _DROP, _HOST, _FORWARDED_FOR, _VIA, _CONNECTION, _LENGTH = range(7)
#: Names remembered per rules and direction; beyond this, names are classified every time, so
#: a client sending endless made-up names cannot grow the memory.
_MAX_KNOWN_NAMES: Final = 1024


class HeaderRules:
    """Headers an endpoint adds to, or removes from, what it relays in one direction.

    ``remove`` names are matched without regard to case; ``add`` replaces any header of the same
    name the message carried, so a configured value is never doubled by the client's own.

    Each rules object remembers how it relays the raw names it has seen (in either direction),
    so a header whose name came before costs one dict look-up, not a lower-casing and a few set
    look-ups: the same few dozen names come in almost every message.
    """

    __slots__ = ("add", "downstream_kinds", "remove", "upstream_kinds")

    def __init__(self, add: Iterable[tuple[str, str]] = (), remove: Iterable[str] = ()) -> None:
        self.add: tuple[tuple[bytes, bytes], ...] = tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in add
        )
        self.remove: frozenset[bytes] = frozenset(
            name.lower().encode("latin-1") for name in remove
        ) | frozenset(name.lower() for name, _ in self.add)
        self.upstream_kinds: dict[bytes, int] = {}
        self.downstream_kinds: dict[bytes, int] = {}

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def __repr__(self) -> str:
        return f"HeaderRules(add={self.add!r}, remove={sorted(self.remove)!r})"


#: The special names with a treatment of their own, by direction; the other special ones drop.
_UPSTREAM_KINDS: Final = {
    b"host": _HOST,
    b"x-forwarded-for": _FORWARDED_FOR,
    b"via": _VIA,
    b"connection": _CONNECTION,
}
_DOWNSTREAM_KINDS: Final = {b"via": _VIA, b"connection": _CONNECTION, b"content-length": _LENGTH}


def _classify(
    name: bytes,
    rules: HeaderRules,
    special: frozenset[bytes],
    kinds: dict[bytes, int],
    known: dict[bytes, int],
) -> int:
    """How ``name`` is relayed in one direction, remembered in ``known`` for next time."""
    lower = name.lower()
    if lower in special:
        kind = kinds.get(lower, _DROP)  # hop-by-hop, framing, or a header this hop sets
    elif lower[:6] == b"proxy-" or lower in rules.remove:
        kind = _DROP
    else:
        kind = _COPY
    if len(known) < _MAX_KNOWN_NAMES:
        known[name] = kind
    return kind


NO_RULES: Final = HeaderRules()


#: Connection values that name no other header (the common case: skip the second pass).
_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close", b"upgrade", b"keep-alive, upgrade"})


def _named_by_connection(values: list[bytes]) -> frozenset[bytes]:
    """The header names ``Connection`` lists, beyond keep-alive/close/upgrade."""
    tokens: set[bytes] = set()
    for value in values:
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
    kinds = rules.upstream_kinds
    headers: RawHeaders = []
    client_host: bytes | None = None
    forwarded_for: bytes | None = None
    via: bytes | None = None
    connection: list[bytes] | None = None
    for name, value in raw:
        kind = kinds.get(name)
        if kind is None:
            kind = _classify(name, rules, _UPSTREAM_SPECIAL, _UPSTREAM_KINDS, kinds)
        if kind == _COPY:
            headers.append((name, value))
        elif kind == _HOST:
            client_host = value
            if host is None:
                headers.append((name, value))
        elif kind == _FORWARDED_FOR:
            forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
        elif kind == _VIA:
            via = value if via is None else via + b", " + value
        elif kind == _CONNECTION and value.lower() not in _PLAIN_CONNECTION:
            connection = [value] if connection is None else [*connection, value]
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
    kinds = rules.downstream_kinds
    headers: RawHeaders = []
    via: bytes | None = None
    connection: list[bytes] | None = None
    for name, value in raw:
        kind = kinds.get(name)
        if kind is None:
            kind = _classify(name, rules, _DOWNSTREAM_SPECIAL, _DOWNSTREAM_KINDS, kinds)
        if kind == _COPY or (kind == _LENGTH and keep_length):
            headers.append((name, value))
        elif kind == _VIA:
            via = value if via is None else via + b", " + value
        elif kind == _CONNECTION and value.lower() not in _PLAIN_CONNECTION:
            connection = [value] if connection is None else [*connection, value]
    if connection is not None:
        named = _named_by_connection(connection)
        if named:
            headers = _drop_named(headers, named)
    headers.append((b"Via", VIA_VALUE if via is None else via + b", " + VIA_VALUE))
    if rules.add:
        headers.extend(rules.add)
    return headers


_VIA_LINE: Final = b"Via: " + VIA_VALUE + b"\r\n"
#: A header line ``downstream_headers`` treats apart from copying, in a lower-cased head: the
#: line's CRLF-led name and its value. Built from the names ``downstream_headers`` goes by, so
#: the two cannot disagree (sorted: the same pattern whatever the hash seed).
_SPECIAL_RESPONSE_LINE: Final = re.compile(
    rb"\r\n("
    + b"|".join(
        re.escape(name) for name in sorted(_DOWNSTREAM_SPECIAL, key=lambda name: (-len(name), name))
    )
    + rb"|proxy-[^:\r]*)[ \t]*:([^\r]*)"
)


def plain_response_lines(
    head: bytes, rules: HeaderRules = NO_RULES
) -> tuple[bytes, bytes, int | None, bool] | None:
    """The reason, relayed header lines, Content-Length and chunking of an ordinary head.

    ``head`` is a response's status line and header lines, each ending in CRLF, as the upstream
    sent them. llhttp must accept them before the result is used: it refuses malformed status
    lines, folded lines, bare CRs and LFs, and a repeated Content-Length, which this relies on.
    The lines come back as ``downstream_headers`` would relay them, ``Via`` included, each
    ending in CRLF; the values keep the spacing the upstream gave them.

    ``None`` means the head needs ``downstream_headers``: an interim (1xx) answer, a ``Via`` to
    extend, a ``Connection`` that names other headers, or rules to apply. Every other head is
    relayed by cutting its hop-by-hop lines out of the bytes: a few C-level scans, where the
    general way costs two parser callbacks and a loop turn per header, so the scans pay off
    from about a dozen headers (see ``PLAIN_HEAD_MIN_SIZE`` in ``ferryman.proxy.upstream``).
    """
    if rules or head[9:10] == b"1":  # an interim answer
        return None
    line_end = head.find(b"\r\n")
    lines = head[line_end:]  # from the status line's CRLF: every header line starts with one
    length: int | None = None
    chunked = False
    kept: list[bytes] = []
    position = 0
    for match in _SPECIAL_RESPONSE_LINE.finditer(lines.lower()):
        name = match[1]
        if name == b"content-length":
            if length is not None:
                return None
            try:
                length = int(match[2])
            except ValueError:
                return None  # llhttp will refuse it; nothing here may raise before it does
            continue
        if name == b"via" or (
            name == b"connection" and match[2].strip(b" \t") not in _PLAIN_CONNECTION
        ):
            return None
        if name == b"transfer-encoding":
            chunked = True
        start, end = match.span()  # the line's leading CRLF to its end: cut out whole
        kept.append(lines[position:start])
        position = end
    kept.append(lines[position:])
    kept.append(_VIA_LINE)
    # Each kept line still starts with a CRLF: the first one ends the status line.
    return head[13:line_end], b"".join(kept)[2:], length, chunked
