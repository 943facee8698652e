"""What a proxy changes in the headers it relays, shared by both of ferryman's proxy paths.

Works on raw ``(name, value)`` byte pairs as they came off the wire, so the fast path never
builds a :class:`~ferryman.http.headers.Headers` and the names keep the case the client used.

RFC 9110 section 7.6.1: a proxy removes the hop-by-hop headers (``Connection`` and every header
it names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, and, by
long-standing practice, every ``Proxy-*`` header) and frames the message again itself. It then
says what it is: ``Via`` (section 7.6.3) and the de-facto ``X-Forwarded-For/-Proto/-Host``.

What a client says about earlier hops (``X-Forwarded-*``, ``X-Real-IP``, ``Forwarded``) is
believed only from the endpoint's ``trusted_proxies``: from anyone else it is dropped and this
hop's own view sent, or an upstream would take any client's word for its address. Header names
with underscores are dropped unless the endpoint allows them (nginx's ``underscores_in_headers``):
CGI-style upstreams read ``X_Forwarded_For`` as ``X-Forwarded-For``. The endpoint's rules
(:class:`HeaderRules`) apply to every header, this hop's own included: ``remove: [Via]`` sends no
``Via`` (nginx's default ``gzip_proxied off`` compresses nothing for a request that has one).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeAlias

from ferryman.proxy.redirects import relocate

__all__ = [
    "FORWARDING",
    "HOP_BY_HOP",
    "TAG_PREFIX",
    "DownstreamHead",
    "HeaderRules",
    "RawHeaders",
    "downstream_headers",
    "header_pairs",
    "only_chunked",
    "plain_request_head",
    "plain_response_lines",
    "upstream_pieces",
]

RawHeaders: TypeAlias = list[tuple[bytes, bytes]]
#: An upstream's absolute URL -> the proxy's for it, or ``None`` (not the upstream's).
Locate: TypeAlias = Callable[[bytes], bytes | None]

#: Lower-case names a proxy never relays (besides those ``Connection`` names, and ``proxy-*``).
HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
#: Lower-case names of what clients say about earlier hops: believed from trusted proxies only.
FORWARDING: Final = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
        b"forwarded",
    }
)
#: Names header rules may neither add nor remove: the framing is the relay's, ``Host`` the
#: endpoint's (``preserve_host``).
_UNRULED: Final = frozenset({b"host", b"content-length", b"transfer-encoding"})
#: Response headers that may hold an upstream's absolute URL (``redirect_rewrite``).
_REDIRECTING: Final = frozenset({b"location", b"content-location", b"refresh"})
VIA_VALUE: Final = b"1.1 ferryman"
#: What a header line is made of besides its name and value.
_SEPARATOR: Final = b": "
_CRLF: Final = b"\r\n"
_HTTP: Final = b"http"
_HTTPS: Final = b"https"
_VIA_LINE: Final = b"Via: " + VIA_VALUE + _CRLF
#: Names each pass treats apart from plain copying, so plain headers cost one set look-up.
_UPSTREAM_SPECIAL: Final = HOP_BY_HOP | FORWARDING | {b"host", b"content-length", b"via"}
#: Request headers that tag a transaction (``ferryman.proxy.transactions``), never forwarded.
TAG_PREFIX: Final = b"x-ferryman-tag-"
_DOWNSTREAM_SPECIAL: Final = HOP_BY_HOP | {b"via", b"content-length"}


#: How a header name is relayed (see ``HeaderRules``' tables).
(
    _COPY,
    _DROP,
    _HOST,
    _FORWARDED_FOR,
    _VIA,
    _CONNECTION,
    _LENGTH,
    _TRANSFER_ENCODING,
    _UPGRADE,
    _FORWARDING,
    _LOCATION,
    _REFRESH,
) = range(12)
#: Names remembered per rules and direction; beyond this, names are classified every time, so
#: a client sending endless made-up names cannot grow the memory.
_MAX_KNOWN_NAMES: Final = 1024
#: Client addresses whose trust is remembered per rules (the same bound, the same reason).
_MAX_KNOWN_ADDRESSES: Final = 1024


class HeaderRules:
    """What an endpoint does to the headers it relays in one direction.

    ``remove`` names are matched without regard to case; ``add`` replaces any header of the same
    name the message carried, so a configured value is never doubled by the client's own. Both
    apply to the headers this hop adds too: ``remove=["Via"]`` sends no ``Via``, and
    ``add=[("X-Forwarded-Proto", "https")]`` replaces ferryman's. ``Host`` and the framing
    headers are the relay's and refused here (``ValueError``).

    ``via=False`` adds no ``Via`` (a ``Via`` that came is relayed as it is). The others concern
    one direction: ``trusted_proxies`` (addresses and networks) and ``underscores`` requests,
    ``redirects`` (rewrite the upstream's own URLs in ``Location``, ``Content-Location`` and
    ``Refresh``, given a way to, see :class:`DownstreamHead`) answers.

    Each rules object remembers how it relays the raw names it has seen (in either direction),
    so a header whose name came before costs one look-up, not a lower-casing and a few set
    look-ups: the same few dozen names come in almost every message.
    """

    __slots__ = (
        "_trusted_addresses",
        "add",
        "add_lines",
        "default_forwarding",
        "downstream_copied",
        "downstream_kinds",
        "downstream_table",
        "forwarded_for",
        "forwarded_host",
        "forwarded_proto",
        "redirects",
        "remove",
        "trusted_proxies",
        "underscores",
        "upstream_copied",
        "upstream_kinds",
        "upstream_table",
        "via",
        "via_line",
    )

    def __init__(
        self,
        add: Iterable[tuple[str, str]] = (),
        remove: Iterable[str] = (),
        *,
        via: bool = True,
        trusted_proxies: Iterable[str] = (),
        underscores: bool = False,
        redirects: bool = True,
    ) -> None:
        self.add: tuple[tuple[bytes, bytes], ...] = tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in add
        )
        self.remove: frozenset[bytes] = frozenset(
            name.lower().encode("latin-1") for name in remove
        ) | frozenset(name.lower() for name, _ in self.add)
        unruled = self.remove & _UNRULED
        if unruled:
            raise ValueError(
                f"header rules cannot add or remove "
                f"{', '.join(repr(name.decode('latin-1')) for name in sorted(unruled))}: "
                "the proxy frames each message itself, and sends the upstream's Host (or the "
                "client's, with preserve_host)"
            )
        #: The added headers' lines, each ending in CRLF, joined once: every relayed head
        #: with rules ends with them (``plain_request_head``, ``DownstreamHead.lines``).
        self.add_lines = b"".join(name + b": " + value + b"\r\n" for name, value in self.add)
        #: This hop's own headers that go out (the rules remove none of them, ``add`` included).
        self.via = via and b"via" not in self.remove
        self.via_line = _VIA_LINE if self.via else b""
        self.forwarded_for = b"x-forwarded-for" not in self.remove
        self.forwarded_proto = b"x-forwarded-proto" not in self.remove
        self.forwarded_host = b"x-forwarded-host" not in self.remove
        #: All three: ``plain_request_head`` writes them in one go.
        self.default_forwarding = (
            self.forwarded_for and self.forwarded_proto and self.forwarded_host
        )
        self.trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
            ipaddress.ip_network(entry) for entry in trusted_proxies
        )
        self._trusted_addresses: dict[str, bool] = {}
        self.underscores = underscores
        self.redirects = redirects
        #: Lower-case name -> how it is relayed, for the names treated apart from copying.
        self.upstream_table = self._upstream_table()
        self.downstream_table = self._downstream_table()
        #: Raw name -> how it is relayed, as names come (see ``_classify_upstream``).
        self.upstream_kinds: dict[bytes, int] = {}
        self.downstream_kinds: dict[bytes, int] = {}
        #: The names of those kinds that are copied as they are, the usual answer, which a
        #: set tells in one membership test (no method call): it holds no name ``_kinds`` lacks.
        self.upstream_copied: set[bytes] = set()
        self.downstream_copied: set[bytes] = set()

    def _upstream_table(self) -> dict[bytes, int]:
        table = dict.fromkeys(self.remove, _DROP)
        table.update(dict.fromkeys(HOP_BY_HOP | {b"content-length"}, _DROP))
        table[b"connection"] = _CONNECTION
        table[b"host"] = _HOST
        for name in FORWARDING - self.remove:
            table[name] = _FORWARDING
        if b"x-forwarded-for" not in self.remove:
            table[b"x-forwarded-for"] = _FORWARDED_FOR
        if self.via:
            table[b"via"] = _VIA
        elif b"via" not in self.remove:
            table[b"via"] = _COPY  # (no Via of ours to extend: the client's goes as it is)
        return table

    def _downstream_table(self) -> dict[bytes, int]:
        table = dict.fromkeys(self.remove, _DROP)
        table.update(dict.fromkeys(HOP_BY_HOP, _DROP))
        table[b"connection"] = _CONNECTION
        table[b"content-length"] = _LENGTH
        table[b"transfer-encoding"] = _TRANSFER_ENCODING  # dropped, but the relay frames by it
        table[b"upgrade"] = _UPGRADE  # dropped, but a 101 relays it
        if self.via:
            table[b"via"] = _VIA
        elif b"via" not in self.remove:
            table[b"via"] = _COPY
        if self.redirects:
            for name in _REDIRECTING - self.remove:
                table[name] = _REFRESH if name == b"refresh" else _LOCATION
        return table

    def trusts(self, client_ip: str | None) -> bool:
        """Whether the client at ``client_ip`` is one of the ``trusted_proxies``, whose
        forwarding headers are kept and extended. Remembered per address: a client sends
        them on every request."""
        if not self.trusted_proxies or client_ip is None:
            return False
        known = self._trusted_addresses
        trusted = known.get(client_ip)
        if trusted is None:
            trusted = _in_networks(client_ip, self.trusted_proxies)
            if len(known) >= _MAX_KNOWN_ADDRESSES:
                known.clear()
            known[client_ip] = trusted
        return trusted

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def __repr__(self) -> str:
        return f"HeaderRules(add={self.add!r}, remove={sorted(self.remove)!r})"


def _in_networks(
    client_ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    """Whether the address ``client_ip`` (an IPv4-mapped IPv6 one as its IPv4 address) is in
    one of ``networks``; a string that is no address is in none."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _remember(name: bytes, kind: int, known: dict[bytes, int], copied: set[bytes]) -> int:
    if len(known) < _MAX_KNOWN_NAMES:
        known[name] = kind
        if kind == _COPY:
            copied.add(name)
    return kind


def _classify_upstream(name: bytes, rules: HeaderRules) -> int:
    """How a request header ``name`` is relayed, remembered for next time."""
    lower = name.lower()
    table = rules.upstream_table
    kind = table.get(lower)
    if kind is None:
        if lower[:6] == b"proxy-" or lower[:15] == TAG_PREFIX:
            # (``X-Ferryman-Tag-*`` tag the transaction: ferryman's, not the upstream's)
            kind = _DROP
        elif 0x5F not in lower:  # "_" as a number: one memchr (see targets._DOT)
            kind = _COPY
        elif not rules.underscores:
            kind = _DROP
        else:
            # Read as a CGI upstream reads it: a forwarding header (believed from trusted
            # proxies only), or one the rules or the protocol drop, is so with underscores too.
            normal = lower.replace(b"_", b"-")
            special = table.get(normal)
            if special is None:
                dropped = normal[:6] == b"proxy-" or normal[:15] == TAG_PREFIX
                kind = _DROP if dropped else _COPY
            elif special in (_FORWARDED_FOR, _FORWARDING):
                kind = _FORWARDING
            elif special == _COPY:
                kind = _COPY
            else:
                kind = _DROP
    return _remember(name, kind, rules.upstream_kinds, rules.upstream_copied)


def _classify_downstream(name: bytes, rules: HeaderRules) -> int:
    """How a response header ``name`` is relayed, remembered for next time."""
    lower = name.lower()
    kind = rules.downstream_table.get(lower)
    if kind is None:
        kind = _DROP if lower[:6] == b"proxy-" else _COPY
    return _remember(name, kind, rules.downstream_kinds, rules.downstream_copied)


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


def header_pairs(pieces: list[bytes]) -> RawHeaders:
    """``(name, value)`` pairs of header line pieces (name, ": ", value, CRLF), for a caller
    that needs :class:`~ferryman.http.headers.Headers` rather than the head's bytes."""
    return list(zip(pieces[0::4], pieces[2::4], strict=True))


def _drop_named(pieces: list[bytes], named: frozenset[bytes], start: int = 0) -> list[bytes]:
    """The header line pieces without the headers ``named`` (by ``Connection``); the ``start``
    pieces before the first header line (a request line, a Host this hop sets) stay."""
    return pieces[:start] + [
        piece
        for first in range(start, len(pieces), 4)
        if pieces[first].lower() not in named
        for piece in pieces[first : first + 4]
    ]


def upstream_pieces(
    raw: Sequence[tuple[bytes, bytes]],
    *,
    host: bytes | None,
    client_ip: str | None,
    scheme: str,
    rules: HeaderRules = NO_RULES,
    upgrade: bytes | None = None,
    pieces: list[bytes] | None = None,
) -> tuple[list[bytes], bytes | None]:
    """The headers to send upstream, as the pieces of their lines (name, ``": "``, value and
    CRLF for each), and the client's ``Host`` (``None`` if it sent none).

    The fast relay passes ``pieces`` holding its request line and joins the list once into the
    head it sends, with no pair made and no bytes concatenated; the general path takes the
    pieces as pairs (:func:`header_pairs`). ``host`` replaces the client's ``Host`` and comes
    first; ``None`` keeps the client's (``preserve_host``). Framing headers are removed: the
    caller frames the body it actually sends. ``upgrade`` keeps an ``Upgrade`` handshake (a
    WebSocket) going through: the caller passes the client's Upgrade value and gets
    ``Connection: upgrade`` and that ``Upgrade`` back.

    Forwarding headers (:data:`FORWARDING`) from a client the rules trust stay where they are,
    ``X-Forwarded-For`` extended with ``client_ip``, and this hop's ``-Proto`` and ``-Host``
    are added only where the client sent none; from any other client they are dropped and this
    hop's own sent.
    """
    kinds = rules.upstream_kinds
    copied = rules.upstream_copied
    if pieces is None:
        pieces = []
    start = len(pieces)
    if host is not None:
        pieces += (b"Host", _SEPARATOR, host, _CRLF)
    client_host: bytes | None = None
    forwarded_for: bytes | None = None
    via: bytes | None = None
    connection: list[bytes] | None = None
    trusted: bool | None = None  # (asked when the first forwarding header comes)
    own_proto = own_host = True
    for name, value in raw:
        if name in copied:
            pieces += (name, _SEPARATOR, value, _CRLF)
            continue
        kind = kinds.get(name)
        if kind is None:
            kind = _classify_upstream(name, rules)
        if kind == _COPY:
            pieces += (name, _SEPARATOR, value, _CRLF)
        elif kind == _HOST:
            client_host = value
            if host is None:
                pieces += (name, _SEPARATOR, value, _CRLF)
        elif kind in (_FORWARDED_FOR, _FORWARDING):
            if trusted is None:
                trusted = rules.trusts(client_ip)
            if not trusted:
                continue
            if kind == _FORWARDED_FOR:
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
                continue
            pieces += (name, _SEPARATOR, value, _CRLF)
            lower = name.lower()
            if lower == b"x-forwarded-proto":
                own_proto = False
            elif lower == b"x-forwarded-host":
                own_host = False
        elif kind == _VIA:
            via = value if via is None else via + b", " + value
        elif kind == _CONNECTION and value.lower() not in _PLAIN_CONNECTION:
            connection = [value] if connection is None else [*connection, value]
    if connection is not None:
        named = _named_by_connection(connection)
        if named:
            # (the Host this hop sets is not the client's to drop)
            pieces[:] = _drop_named(pieces, named, start if host is None else start + 4)
    _forwarding_pieces(
        pieces,
        rules,
        client_ip,
        forwarded_for,
        scheme,
        client_host if own_host else None,
        own_proto,
        via,
    )
    for name, value in rules.add:
        pieces += (name, _SEPARATOR, value, _CRLF)
    if upgrade is not None:
        pieces += (
            b"Connection",
            _SEPARATOR,
            b"upgrade",
            _CRLF,
            b"Upgrade",
            _SEPARATOR,
            upgrade,
            _CRLF,
        )
    return pieces, client_host


def _forwarding_pieces(
    pieces: list[bytes],
    rules: HeaderRules,
    client_ip: str | None,
    forwarded_for: bytes | None,
    scheme: str,
    client_host: bytes | None,
    proto: bool,
    via: bytes | None,
) -> None:
    """This hop's ``X-Forwarded-For/-Proto/-Host`` and ``Via`` lines, those the rules keep:
    ``forwarded_for`` and ``via`` are the trusted client's to extend, ``client_host`` the
    ``X-Forwarded-Host`` to send (``None``: none), ``proto`` whether to send ``-Proto``."""
    if rules.forwarded_for:
        if client_ip is not None:
            ip = client_ip.encode("ascii")
            if forwarded_for is not None:
                ip = forwarded_for + b", " + ip
            pieces += (b"X-Forwarded-For", _SEPARATOR, ip, _CRLF)
        elif forwarded_for is not None:
            pieces += (b"X-Forwarded-For", _SEPARATOR, forwarded_for, _CRLF)
    if proto and rules.forwarded_proto:
        pieces += (b"X-Forwarded-Proto", _SEPARATOR, _HTTPS if scheme == "https" else _HTTP, _CRLF)
    if client_host is not None and rules.forwarded_host:
        pieces += (b"X-Forwarded-Host", _SEPARATOR, client_host, _CRLF)
    if rules.via:
        pieces += (b"Via", _SEPARATOR, VIA_VALUE if via is None else via + b", " + VIA_VALUE, _CRLF)


#: What ``upstream_pieces`` puts after a plain request's X-Forwarded-For value, by scheme.
_HTTP_PROTO_LINE: Final = b"\r\nX-Forwarded-Proto: http\r\n"
_HTTPS_PROTO_LINE: Final = b"\r\nX-Forwarded-Proto: https\r\n"


def plain_request_head(
    method: bytes,
    target: bytes,
    raw: Sequence[tuple[bytes, bytes]],
    host_line: bytes,
    client_ip: str,
    scheme: str,
    rules: HeaderRules,
    framing: bytes,
) -> bytes | None:
    """The whole head :func:`upstream_pieces` makes for an ordinary request, in one join.

    Ordinary: every header is one the rules copy as it is, or ``Host`` (which ``host_line``,
    ``Host: <upstream>`` and its CRLF, replaces), with names seen before. ``framing`` is the
    caller's Content-Length or Transfer-Encoding line (or nothing). ``None`` means the request
    needs the general way: a forwarding header to weigh, a hop-by-hop or removed header to
    drop, a name not classified yet. The same bytes either way (``tests/proxy/test_headers.py``
    holds the two side by side); this way grows no pieces list header line by header line, and
    took the relay's ``request_head`` for wrk's request from about 0.75 to 0.5 µs.
    """
    copied = rules.upstream_copied
    pieces = [method, b" ", target, b" HTTP/1.1\r\n", host_line]
    client_host = None
    for name, value in raw:
        if name in copied:
            pieces += (name, _SEPARATOR, value, _CRLF)
        elif rules.upstream_kinds.get(name) == _HOST:
            client_host = value
        else:
            return None
    if rules.default_forwarding:
        pieces += (
            b"X-Forwarded-For: ",
            client_ip.encode("ascii"),
            _HTTPS_PROTO_LINE if scheme == "https" else _HTTP_PROTO_LINE,
        )
        if client_host is not None:
            pieces += (b"X-Forwarded-Host: ", client_host, _CRLF)
        pieces += (rules.via_line, rules.add_lines, framing, _CRLF)
    else:  # (the rules remove some of this hop's forwarding headers)
        _forwarding_pieces(pieces, rules, client_ip, None, scheme, client_host, True, None)
        pieces += (rules.add_lines, framing, _CRLF)
    return b"".join(pieces)


def downstream_headers(
    raw: Sequence[tuple[bytes, bytes]],
    *,
    rules: HeaderRules = NO_RULES,
    keep_length: bool = True,
    locate: Locate | None = None,
) -> RawHeaders:
    """The upstream response's headers as the client gets them (framing left to the caller).

    ``keep_length`` keeps ``Content-Length``, which the caller passes when it relays the body
    unchanged (a HEAD or 304 answer keeps the length of the body it does not carry, too).
    ``locate`` rewrites the upstream's own URLs (see :class:`DownstreamHead`).
    """
    head = DownstreamHead(rules, locate)
    add = head.add
    for name, value in raw:
        add(name, value)
    headers = head.pairs()
    if not keep_length:
        headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return headers


class DownstreamHead:
    """An upstream answer's header lines as the client gets them, built header by header.

    The fast relay makes :meth:`add` its response parser's ``on_header`` callback, so a relayed
    header costs that call, one set membership test and one list extend, and the head is ready to
    write when the parser reaches its end: no list of pairs to walk again, no pair to join.
    ``downstream_headers`` runs the same steps over a list, so the two ways cannot disagree.
    One per upstream connection, :meth:`reset` for each answer.

    ``locate`` maps an absolute URL of the upstream's to the proxy's (``None``: not the
    upstream's): with rules that rewrite redirects, ``Location``, ``Content-Location`` and the
    URL in ``Refresh`` go through it. It is asked while the answer's request is the one being
    answered, so it may look at that request (the client's ``Host``).
    """

    __slots__ = (
        "_connection",
        "_copied",
        "_kinds",
        "_locate",
        "_pieces",
        "_rules",
        "_via",
        "chunked",
        "content_length",
        "foreign_coding",
        "upgrade",
    )

    def __init__(self, rules: HeaderRules = NO_RULES, locate: Locate | None = None) -> None:
        self._rules = rules
        self._locate = locate
        self._kinds = rules.downstream_kinds
        self._copied = rules.downstream_copied
        self.reset()

    def reset(self) -> None:
        """Forget the answer: the next header begins another (with the same rules)."""
        #: Name, separator, value and CRLF of each header relayed so far, in order.
        self._pieces: list[bytes] = []
        self._via: bytes | None = None
        #: ``Connection`` values that name other headers (to drop at the end, wherever they are).
        self._connection: list[bytes] | None = None
        #: The answer's framing, which the relay needs: the parser does not tell it.
        self.content_length: int | None = None
        self.chunked = False
        #: A transfer coding besides (or before) one ``chunked``: the relay cannot undo it, and
        #: dropping Transfer-Encoding (hop-by-hop) would pass the coded bytes off as the body.
        self.foreign_coding = False
        #: What a 101 answer upgrades to (``Upgrade`` itself is hop-by-hop).
        self.upgrade: bytes | None = None

    def add(self, name: bytes, value: bytes) -> None:
        if name in self._copied:
            self._pieces += (name, _SEPARATOR, value, _CRLF)
            return
        kind = self._kinds.get(name)
        if kind == _LENGTH and value.isdigit():  # (nearly every answer has one: no call)
            self._pieces += (name, _SEPARATOR, value, _CRLF)
            self.content_length = int(value)
        elif kind == _CONNECTION and value.lower() in _PLAIN_CONNECTION:
            pass  # (nginx's keep-alive, say: nothing to remember)
        else:
            self._add_special(name, value, kind)

    def _add_special(self, name: bytes, value: bytes, kind: int | None) -> None:
        if kind is None:
            kind = _classify_downstream(name, self._rules)
        if kind == _COPY:
            self._pieces += (name, _SEPARATOR, value, _CRLF)
        elif kind == _LENGTH:
            self._pieces += (name, _SEPARATOR, value, _CRLF)
            try:
                self.content_length = int(value)
            except ValueError:  # (llhttp refuses it; other header lists may hold one)
                self.content_length = None
        elif kind == _TRANSFER_ENCODING:
            if self.chunked or not only_chunked(value):
                self.foreign_coding = True
            self.chunked = True
        elif kind == _VIA:
            self._via = value if self._via is None else self._via + b", " + value
        elif kind == _CONNECTION:
            if value.lower() not in _PLAIN_CONNECTION:
                connection = self._connection
                self._connection = [value] if connection is None else [*connection, value]
        elif kind == _UPGRADE:
            self.upgrade = value
        elif kind in (_LOCATION, _REFRESH):
            locate = self._locate
            if locate is not None:
                value = relocate(value, locate, kind == _REFRESH)
            self._pieces += (name, _SEPARATOR, value, _CRLF)

    def _relayed_pieces(self) -> list[bytes]:
        """The pieces without the headers ``Connection`` named (they may come before it)."""
        named = _named_by_connection(self._connection) if self._connection is not None else None
        return _drop_named(self._pieces, named) if named else self._pieces

    def lines(self) -> bytes:
        """The relayed header lines, ``Via`` and the rules' own included, each ending in CRLF."""
        via = self._via
        tail = self._rules.via_line if via is None else b"Via: " + via + b", " + VIA_VALUE + _CRLF
        add_lines = self._rules.add_lines
        if add_lines:
            tail += add_lines
        # (no call for the common answer, whose Connection names nothing: this runs per answer)
        pieces = self._pieces if self._connection is None else self._relayed_pieces()
        return b"".join(pieces) + tail

    def header_count(self) -> int:
        """How many headers are relayed so far (hop-by-hop and removed ones not counted)."""
        return len(self._pieces) // 4

    def pairs(self) -> RawHeaders:
        """The relayed headers as ``(name, value)`` pairs, ``Via`` and the rules' own included."""
        headers = header_pairs(self._relayed_pieces())
        via = self._via
        if self._rules.via:
            headers.append((b"Via", VIA_VALUE if via is None else via + b", " + VIA_VALUE))
        headers.extend(self._rules.add)
        return headers


def _trie(names: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A regular expression matching each ``(name, tail)``: the name, then the pattern
    ``tail``, with the names shared prefixes merged (``con(?:nection|tent-length)``), so at a
    header line whose name is none of them the match fails at the first byte where they part,
    instead of once per name (every long answer's head is searched this way)."""
    branches: dict[bytes, list[tuple[bytes, bytes]]] = {}
    end: bytes | None = None
    for name, tail in names:
        if name:
            branches.setdefault(name[:1], []).append((name[1:], tail))
        else:
            end = tail
    alternatives = [re.escape(first) + _trie(rest) for first, rest in sorted(branches.items())]
    if not alternatives:
        return end or b""
    body = alternatives[0] if len(alternatives) == 1 else b"(?:" + b"|".join(alternatives) + b")"
    return body if end is None else b"(?:" + body + b"|" + end + b")"


#: A header line ``downstream_headers`` treats apart from copying, in a lower-cased head: the
#: line's CRLF-led name and its value. Built from the names ``downstream_headers`` goes by, so
#: the two cannot disagree (sorted: the same pattern whatever the hash seed). One group for
#: every name: with a second one for ``_REDIRECTING``, sre searched 7% slower.
_SPECIAL_RESPONSE_LINE: Final = re.compile(
    rb"\r\n("
    + _trie(
        [(name, b"") for name in sorted(_DOWNSTREAM_SPECIAL | _REDIRECTING)]
        + [(b"proxy-", rb"[^:\r]*")]
    )
    + rb")[ \t]*:([^\r]*)"
)


def only_chunked(coding: bytes) -> bool:
    """Whether a Transfer-Encoding value is ``chunked`` alone, the one coding a proxy undoes."""
    return coding.strip(b" \t").lower() == b"chunked"


def plain_response_lines(
    head: bytes, rules: HeaderRules = NO_RULES
) -> tuple[bytes, bytes, int | None, bool] | None:
    """The reason, relayed header lines, Content-Length and chunking of an ordinary head.

    ``head`` is a response's status line and header lines, each ending in CRLF, as the upstream
    sent them. llhttp must accept them before the result is used: it refuses malformed status
    lines, folded lines, bare CRs and LFs, and a repeated Content-Length, which this relies on.
    The lines come back as ``downstream_headers`` would relay them, ``Via`` included, each
    ending in CRLF; the values keep the spacing the upstream gave them.

    ``None`` means the head needs the per-header way (:class:`DownstreamHead`): an interim
    (1xx) answer, a ``Via`` to extend, a ``Connection`` that names other headers, a URL that
    may be the upstream's to rewrite (``Location``...), or rules to apply. Every other head is
    relayed by cutting its hop-by-hop lines out of the bytes: a few C-level scans, where the
    per-header way costs a parser callback into :meth:`DownstreamHead.add` per header, so the
    scans pay off from about a dozen headers (see ``PLAIN_HEAD_MIN_SIZE`` in
    ``ferryman.proxy.upstream``).
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
        # (the likeliest names first: an answer has a Content-Length, often a Connection)
        name = match[1]
        if name == b"content-length":
            if length is not None:
                return None
            try:
                length = int(match[2])
            except ValueError:
                return None  # llhttp will refuse it; nothing here may raise before it does
            continue
        if name == b"connection":
            if match[2].strip(b" \t") not in _PLAIN_CONNECTION:
                return None
        elif name == b"via":
            return None
        elif name == b"transfer-encoding":
            if chunked or match[2].strip(b" \t") != b"chunked":
                return None  # (the per-header way tells the relay of the coding it cannot undo)
            chunked = True
        elif name in (b"location", b"content-location", b"refresh"):  # (_REDIRECTING)
            if rules.redirects:
                return None
            continue  # (relayed as it is)
        start, end = match.span()  # the line's leading CRLF to its end: cut out whole
        kept.append(lines[position:start])
        position = end
    kept.append(lines[position:])
    kept.append(rules.via_line)
    # Each kept line still starts with a CRLF: the first one ends the status line. (The
    # reason is sliced only when there is one: compiled by mypyc, a bytes slice whose start
    # is past its end fails instead of giving b"", as it does in CPython.)
    reason = head[13:line_end] if line_end > 13 else b""
    return reason, b"".join(kept)[2:], length, chunked
