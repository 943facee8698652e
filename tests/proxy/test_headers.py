"""What the proxy changes in relayed headers (both paths share these functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.proxy import headers as headers_module
from ferryman.proxy.headers import (
    HOP_BY_HOP,
    NO_RULES,
    VIA_VALUE,
    DownstreamHead,
    HeaderRules,
    downstream_headers,
    header_pairs,
    plain_request_head,
    plain_response_lines,
    upstream_pieces,
)

HOST = b"upstream.test:8080"


def upstream_headers(
    raw: list[tuple[bytes, bytes]], **options: object
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """The upstream headers as pairs, the way the general path (the handler) takes them."""
    pieces, client_host = upstream_pieces(raw, **options)  # type: ignore[arg-type]
    return header_pairs(pieces), client_host


def up(raw: list[tuple[bytes, bytes]], **options: object) -> list[tuple[bytes, bytes]]:
    arguments: dict[str, object] = {"host": HOST, "client_ip": "192.0.2.1", "scheme": "http"}
    arguments.update(options)
    headers, _ = upstream_headers(raw, **arguments)
    return headers


def named(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name.lower()]


def test_a_plain_request_gets_host_and_forwarding_headers() -> None:
    headers, client_host = upstream_headers(
        [(b"Host", b"proxy.test"), (b"Accept", b"*/*")],
        host=HOST,
        client_ip="192.0.2.1",
        scheme="https",
    )
    assert client_host == b"proxy.test"
    assert headers == [
        (b"Host", HOST),
        (b"Accept", b"*/*"),
        (b"X-Forwarded-For", b"192.0.2.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"proxy.test"),
        (b"Via", b"1.1 ferryman"),
    ]


def test_preserve_host_keeps_the_client_host_in_place() -> None:
    headers = up([(b"host", b"proxy.test"), (b"A", b"1")], host=None)
    assert headers[0] == (b"host", b"proxy.test")
    assert named(headers, b"host") == [b"proxy.test"]


def test_no_client_host_means_no_x_forwarded_host() -> None:
    headers, client_host = upstream_headers([], host=HOST, client_ip=None, scheme="http")
    assert client_host is None
    assert named(headers, b"x-forwarded-host") == []
    assert named(headers, b"x-forwarded-for") == []


def test_hop_by_hop_and_connection_named_headers_are_removed_upstream() -> None:
    raw = [
        (b"Connection", b"keep-alive, X-Secret"),
        (b"connection", b"X-Other"),
        (b"X-Secret", b"1"),
        (b"X-Other", b"2"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Sum"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"10"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"PROXY-CONNECTION", b"keep-alive"),
        (b"X-Kept", b"yes"),
    ]
    headers = up(raw)
    lowered = {name.lower() for name, _ in headers}
    assert lowered.isdisjoint(HOP_BY_HOP)
    assert not {b"x-secret", b"x-other", b"content-length"} & lowered
    assert not any(name.startswith(b"proxy-") for name in lowered)
    assert named(headers, b"x-kept") == [b"yes"]


SPOOFED = [
    (b"X-Forwarded-For", b"203.0.113.9"),
    (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2"),
    (b"Via", b"1.0 edge"),
    (b"X-Forwarded-Proto", b"https"),
    (b"X-Forwarded-Host", b"spoofed"),
    (b"X-Forwarded-Port", b"443"),
    (b"X-Forwarded-Prefix", b"/admin"),
    (b"X-Real-IP", b"198.51.100.1"),
    (b"Forwarded", b"for=198.51.100.1;proto=https"),
    (b"Host", b"proxy.test"),
]


def test_forwarding_headers_from_anyone_are_replaced_by_this_hops_own() -> None:
    headers = up(SPOOFED)
    assert named(headers, b"x-forwarded-for") == [b"192.0.2.1"]
    assert named(headers, b"x-forwarded-proto") == [b"http"]
    assert named(headers, b"x-forwarded-host") == [b"proxy.test"]
    for name in (b"x-forwarded-port", b"x-forwarded-prefix", b"x-real-ip", b"forwarded"):
        assert named(headers, name) == [], name
    assert named(headers, b"via") == [b"1.0 edge, 1.1 ferryman"]  # Via is a chain, not a claim


def test_forwarding_headers_from_a_trusted_proxy_are_kept_and_extended() -> None:
    rules = HeaderRules(trusted_proxies=["192.0.2.0/24", "2001:db8::1"])
    headers = up(SPOOFED, rules=rules)
    assert named(headers, b"x-forwarded-for") == [b"203.0.113.9, 10.0.0.1, 10.0.0.2, 192.0.2.1"]
    # What the trusted proxy says about the client's connection stands; this hop adds nothing.
    assert named(headers, b"x-forwarded-proto") == [b"https"]
    assert named(headers, b"x-forwarded-host") == [b"spoofed"]
    assert named(headers, b"x-real-ip") == [b"198.51.100.1"]
    assert named(headers, b"forwarded") == [b"for=198.51.100.1;proto=https"]
    assert named(headers, b"x-forwarded-prefix") == [b"/admin"]
    # Where it said nothing, this hop's view goes.
    headers = up([(b"Host", b"proxy.test"), (b"X-Forwarded-For", b"203.0.113.9")], rules=rules)
    assert named(headers, b"x-forwarded-for") == [b"203.0.113.9, 192.0.2.1"]
    assert named(headers, b"x-forwarded-proto") == [b"http"]
    assert named(headers, b"x-forwarded-host") == [b"proxy.test"]
    # Another address is anyone.
    assert named(up(SPOOFED, rules=rules, client_ip="192.0.3.1"), b"x-real-ip") == []


@pytest.mark.parametrize(
    ("client_ip", "trusted"),
    [
        ("10.1.2.3", True),
        ("10.1.2.3", True),  # (remembered)
        ("11.0.0.1", False),
        ("::ffff:10.0.0.7", True),  # a dual-stack socket's IPv4 client
        ("2001:db8::1", True),
        ("2001:db8::2", False),
        ("not an address", False),
        (None, False),
    ],
)
def test_trusted_proxies_are_addresses_and_networks(client_ip: str | None, trusted: bool) -> None:
    rules = HeaderRules(trusted_proxies=["10.0.0.0/8", "2001:db8::1/128"])
    assert rules.trusts(client_ip) is trusted
    assert not HeaderRules().trusts("10.1.2.3")


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.1/8"):
        HeaderRules(trusted_proxies=["10.0.0.1/8"])


def test_the_memory_of_client_addresses_is_bounded() -> None:
    rules = HeaderRules(trusted_proxies=["10.0.0.0/8"])
    for number in range(3000):
        rules.trusts(f"192.0.{number // 256}.{number % 256}")
    assert len(rules._trusted_addresses) <= headers_module._MAX_KNOWN_ADDRESSES
    assert rules.trusts("10.0.0.1")


def test_header_names_with_underscores_are_dropped_unless_allowed() -> None:
    raw = [
        (b"X_Forwarded_Host", b"evil.test"),
        (b"X_Real_IP", b"198.51.100.1"),
        (b"x_api_key", b"k"),
        (b"X_Custom", b"1"),
        (b"Keep_Alive", b"1"),
        (b"Proxy_Authorization", b"Basic eA=="),
        (b"X-Dashed", b"2"),
    ]
    assert [name for name, _ in up(raw) if b"_" in name] == []
    assert named(up(raw), b"x-dashed") == [b"2"]
    allowed = HeaderRules(underscores=True, remove=["X-Api-Key"])
    kept = up(raw, rules=allowed)
    # Read as CGI upstreams read them: a forwarding header is still only a trusted proxy's,
    # a removed or hop-by-hop one is still removed.
    assert [name for name, _ in kept if b"_" in name] == [b"X_Custom"]
    trusting = HeaderRules(underscores=True, trusted_proxies=["192.0.2.1"])
    assert named(up(raw, rules=trusting), b"x_forwarded_host") == [b"evil.test"]


def test_rules_remove_this_hops_own_headers() -> None:
    """``remove`` applies to what ferryman adds: no Via, no X-Forwarded-For (issue 20, item 9:
    nginx's ``gzip_proxied off`` compresses nothing for a request that carries Via)."""
    rules = HeaderRules(remove=["Via", "X-Forwarded-For"])
    headers = up(SPOOFED, rules=rules)
    assert named(headers, b"via") == [] and named(headers, b"x-forwarded-for") == []
    assert named(headers, b"x-forwarded-proto") == [b"http"]
    rules = HeaderRules(remove=["x-forwarded-proto", "X-FORWARDED-HOST"])
    headers = up(SPOOFED, rules=rules, client_ip="192.0.2.1")
    assert named(headers, b"x-forwarded-proto") == named(headers, b"x-forwarded-host") == []
    assert named(headers, b"x-forwarded-for") == [b"192.0.2.1"]


def test_added_headers_replace_this_hops_own() -> None:
    rules = HeaderRules(add=[("X-Forwarded-Proto", "https"), ("Via", "1.1 gateway")])
    headers = up(SPOOFED, rules=rules)
    assert named(headers, b"x-forwarded-proto") == [b"https"]
    assert named(headers, b"via") == [b"1.1 gateway"]


def test_via_can_be_switched_off() -> None:
    """No Via of ferryman's either way; one that came is relayed as it is."""
    rules = HeaderRules(via=False)
    assert named(up([(b"Via", b"1.0 edge"), (b"A", b"1")], rules=rules), b"via") == [b"1.0 edge"]
    assert named(up([(b"A", b"1")], rules=rules), b"via") == []
    assert downstream_headers([(b"Server", b"x")], rules=rules) == [(b"Server", b"x")]
    assert downstream_headers([(b"Via", b"1.0 cache")], rules=rules) == [(b"Via", b"1.0 cache")]
    assert plain_response_lines(head_of((b"Server", b"x")), rules) == (
        b"OK",
        b"Server: x\r\n",
        None,
        False,
    )


def test_response_rules_remove_via() -> None:
    rules = HeaderRules(remove=["via"])
    assert downstream_headers([(b"Via", b"1.0 cache"), (b"A", b"1")], rules=rules) == [(b"A", b"1")]
    head = DownstreamHead(rules)
    head.add(b"A", b"1")
    assert head.lines() == b"A: 1\r\n"


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding"])
def test_rules_cannot_touch_host_or_framing(name: str) -> None:
    with pytest.raises(ValueError, match="cannot add or remove"):
        HeaderRules(remove=[name])
    with pytest.raises(ValueError, match="cannot add or remove"):
        HeaderRules(add=[(name, "x")])


def test_rules_remove_any_case_and_add_replaces() -> None:
    rules = HeaderRules(add=[("X-Team", "core")], remove=["Cookie"])
    headers = up([(b"COOKIE", b"a=1"), (b"x-team", b"client"), (b"X-Other", b"1")], rules=rules)
    assert named(headers, b"cookie") == []
    assert named(headers, b"x-team") == [b"core"]
    assert headers[-1] == (b"X-Team", b"core")


def test_an_upgrade_is_kept_when_asked() -> None:
    headers = up(
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"Sec-WebSocket-Key", b"k")],
        upgrade=b"websocket",
    )
    assert named(headers, b"connection") == [b"upgrade"]
    assert named(headers, b"upgrade") == [b"websocket"]
    assert named(headers, b"sec-websocket-key") == [b"k"]


def test_names_keep_their_case_and_order() -> None:
    headers = up([(b"x-b", b"1"), (b"X-A", b"2"), (b"x-b", b"3")])
    assert [pair for pair in headers if pair[0].lower() in (b"x-a", b"x-b")] == [
        (b"x-b", b"1"),
        (b"X-A", b"2"),
        (b"x-b", b"3"),
    ]


def test_downstream_removes_hop_by_hop_and_appends_via() -> None:
    headers = downstream_headers(
        [
            (b"Connection", b"close, X-Internal"),
            (b"X-Internal", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Trailer", b"X-Sum"),
            (b"Upgrade", b"h2c"),
            (b"Via", b"1.1 cache"),
            (b"Content-Length", b"12"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
    )
    assert headers == [
        (b"Content-Length", b"12"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"Via", b"1.1 cache, 1.1 ferryman"),
    ]


def test_downstream_can_drop_the_length() -> None:
    headers = downstream_headers([(b"Content-Length", b"12")], keep_length=False)
    assert headers == [(b"Via", b"1.1 ferryman")]


def test_downstream_rules() -> None:
    rules = HeaderRules(add=[("X-Served-By", "ferryman")], remove=["server"])
    headers = downstream_headers([(b"Server", b"nginx"), (b"X-Served-By", b"up")], rules=rules)
    assert headers == [(b"Via", b"1.1 ferryman"), (b"X-Served-By", b"ferryman")]


def test_header_rules_are_falsy_when_empty() -> None:
    assert not NO_RULES and not HeaderRules()
    assert HeaderRules(remove=["a"]) and HeaderRules(add=[("a", "b")])
    assert b"x-team" in HeaderRules(add=[("X-Team", "1")]).remove
    assert "x-team" in repr(HeaderRules(add=[("X-Team", "1")]))


def test_names_seen_before_are_treated_the_same_and_the_memory_of_names_is_bounded() -> None:
    """Each rules object remembers how it relays a raw name; a client inventing names cannot
    grow that memory, and names past the bound are still treated by the rules."""
    rules = HeaderRules(remove=["X-Secret"])
    many = [(b"X-Made-Up-%d" % number, b"v") for number in range(1500)]
    for _ in range(2):  # the second pass answers from what the first remembered
        headers = up([*many, (b"Connection", b"keep-alive"), (b"X-SECRET", b"s")], rules=rules)
        assert named(headers, b"x-secret") == [] and named(headers, b"connection") == []
        assert headers[1:1501] == many
        response = downstream_headers([*many, (b"x-secret", b"s")], rules=rules)
        assert response[:1500] == many and named(response, b"x-secret") == []
    assert len(rules.upstream_kinds) == len(rules.downstream_kinds) == 1024
    # The copied names are the remembered ones relayed as they are: bounded the same way.
    assert rules.upstream_copied == {
        name for name, kind in rules.upstream_kinds.items() if kind == headers_module._COPY
    }
    assert rules.downstream_copied == {
        name for name, kind in rules.downstream_kinds.items() if kind == headers_module._COPY
    }


# -- plain_response_lines: the relay's shortcut for ordinary heads ---------------------------------


def head_of(*headers: tuple[bytes, bytes], status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers)


def as_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


ORDINARY_HEADS = [
    # nginx's answer to the benchmark
    (
        (b"Server", b"nginx"),
        (b"Date", b"Sat, 21 Nov 2026 10:00:00 GMT"),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"213"),
        (b"Connection", b"keep-alive"),
        (b"ETag", b'"655f1c00-d5"'),
    ),
    # every hop-by-hop header a plain Connection allows, in any case, first and last
    (
        (b"connection", b"Keep-Alive"),
        (b"KEEP-ALIVE", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Sum"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"X-Kept", b"1"),
        (b"Proxy-Connection", b"close"),
    ),
    # names that only begin like hop-by-hop ones are kept
    (
        (b"Connection-Id", b"7"),
        (b"X-Connection", b"x"),
        (b"TE-Hint", b"y"),
        (b"Via-Region", b"eu"),
        (b"Trailers", b"z"),
        (b"Content-Length-Hint", b"9"),
        (b"Connection", b"close"),
    ),
    # no headers at all, and only hop-by-hop ones
    (),
    ((b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5")),
]


@pytest.mark.parametrize("headers", ORDINARY_HEADS)
def test_plain_response_lines_relay_what_downstream_headers_would(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    plain = plain_response_lines(head_of(*headers))
    assert plain is not None
    reason, lines, length, chunked = plain
    assert reason == b"OK"
    assert lines == as_lines(downstream_headers(list(headers)))
    lengths = [int(v) for n, v in headers if n.lower() == b"content-length"]
    assert length == (lengths[0] if lengths else None)
    assert chunked == any(n.lower() == b"transfer-encoding" for n, _ in headers)


def test_plain_response_lines_keep_the_upstreams_spacing_and_reason() -> None:
    head = b"HTTP/1.1 418 I'm a teapot\r\nX-A:no-space\r\nX-B:   padded  \r\nContent-Length:  5\r\n"
    assert plain_response_lines(head) == (
        b"I'm a teapot",
        b"X-A:no-space\r\nX-B:   padded  \r\nContent-Length:  5\r\nVia: 1.1 ferryman\r\n",
        5,
        False,
    )
    assert plain_response_lines(b"HTTP/1.1 204\r\n") == (b"", b"Via: 1.1 ferryman\r\n", None, False)


@pytest.mark.parametrize(
    "head",
    [
        head_of((b"Link", b"</a.css>"), status=b"103 Early Hints"),
        head_of((b"Upgrade", b"websocket"), status=b"101 Switching Protocols"),
        head_of((b"Via", b"1.0 cache"), (b"X-A", b"1")),  # extended, not copied
        head_of((b"Connection", b"close, X-Internal"), (b"X-Internal", b"1")),
        head_of((b"Content-Length", b"1"), (b"Content-Length", b"1")),
        head_of((b"Content-Length", b"abc")),  # llhttp refuses it; nothing may raise first
    ],
)
def test_heads_plain_response_lines_leaves_to_downstream_headers(head: bytes) -> None:
    assert plain_response_lines(head) is None


def test_rules_leave_every_head_to_downstream_headers() -> None:
    rules = HeaderRules(remove=["server"])
    assert plain_response_lines(head_of((b"Server", b"nginx")), rules) is None
    assert plain_response_lines(head_of((b"Server", b"nginx"))) is not None


_NAMES = sorted(
    HOP_BY_HOP
    | headers_module._DOWNSTREAM_SPECIAL
    | {b"proxy-x", b"server", b"x-connection", b"connection-id", b"te-hint", b"via-region"}
    | {b"set-cookie", b"trailers", b"content-length-hint"}
    | headers_module._REDIRECTING
    | {b"locations", b"x-location", b"content-locator", b"refresh-rate", b"con"}
)
_VALUES = [b"keep-alive", b"close", b"Upgrade", b"close, X-A", b"12", b"chunked", b"1.0 cdn", b"x"]


#: Header lists from hop-by-hop, look-alike and plain names in any case.
_HEADER_LISTS = st.lists(
    st.tuples(
        st.sampled_from(_NAMES).flatmap(
            lambda name: st.sampled_from([name, name.title(), name.upper()])
        ),
        st.sampled_from(_VALUES),
    ),
    max_size=12,
)


@given(_HEADER_LISTS)
def test_plain_response_lines_agree_with_downstream_headers_on_any_head(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Whenever the shortcut answers, it answers what the general way would."""
    plain = plain_response_lines(head_of(*headers))
    if plain is None:
        return
    _, lines, length, chunked = plain
    assert lines == as_lines(downstream_headers(headers))
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    assert length == (int(lengths[0]) if lengths else None) and len(lengths) <= 1
    assert chunked == any(name.lower() == b"transfer-encoding" for name, _ in headers)
    assert not any(name.lower() == b"via" for name, _ in headers)


# -- DownstreamHead: the response head built header by header, as the fast relay builds it ------


def reference_downstream(
    headers: list[tuple[bytes, bytes]], rules: HeaderRules
) -> list[tuple[bytes, bytes]]:
    """RFC 9110 section 7.6.1 written as plainly as it can be: the oracle for the builder."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    } - {b"", b"keep-alive", b"close", b"upgrade"}
    ours = {b"via"} if rules.via else set()  # (a Via to extend; without ours, relayed)
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP | named | rules.remove | ours
        and not name.lower().startswith(b"proxy-")
    ]
    vias = [value for name, value in headers if name.lower() == b"via"]
    via = [(b"Via", b", ".join([*vias, VIA_VALUE]))] if rules.via else []
    return [*kept, *via, *rules.add]


_RULES = [
    NO_RULES,
    HeaderRules(remove=["Server", "Set-Cookie"]),
    HeaderRules(add=[("X-Served-By", "ferryman")], remove=["x-connection"]),
    HeaderRules(via=False),
    HeaderRules(remove=["Via", "X-Forwarded-For"]),
    HeaderRules(remove=["X-Forwarded-Host"], via=False, underscores=True),
    HeaderRules(trusted_proxies=["192.0.2.0/24"], add=[("X-Forwarded-Proto", "https")]),
]


@given(_HEADER_LISTS, st.sampled_from(_RULES))
def test_the_head_built_header_by_header_is_what_rfc_9110_relays(
    headers: list[tuple[bytes, bytes]], rules: HeaderRules
) -> None:
    head = DownstreamHead(rules)
    for name, value in headers:
        head.add(name, value)
    expected = reference_downstream(headers, rules)
    assert head.pairs() == expected
    assert head.lines() == as_lines(expected)
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    assert head.content_length == (int(lengths[-1]) if lengths and lengths[-1].isdigit() else None)
    assert head.chunked == any(name.lower() == b"transfer-encoding" for name, _ in headers)
    upgrades = [value for name, value in headers if name.lower() == b"upgrade"]
    assert head.upgrade == (upgrades[-1] if upgrades else None)
    head.reset()  # the next answer starts from nothing, with the same rules
    head.add(b"Server", b"nginx")
    assert head.pairs() == reference_downstream([(b"Server", b"nginx")], rules)


def test_header_pairs_are_the_lines_of_upstream_pieces() -> None:
    raw = [(b"Host", b"proxy.test"), (b"Connection", b"close, X-A"), (b"X-A", b"1"), (b"B", b"2")]
    pieces, client_host = upstream_pieces(raw, host=HOST, client_ip="192.0.2.1", scheme="http")
    headers = header_pairs(pieces)
    assert b"".join(pieces) == as_lines(headers) and client_host == b"proxy.test"
    assert headers[0] == (b"Host", HOST) and (b"X-A", b"1") not in headers


# -- plain_request_head: the fast relay's shortcut for ordinary requests ------------------------


def general_request_head(
    raw: list[tuple[bytes, bytes]], rules: HeaderRules, scheme: str, framing: bytes
) -> bytes:
    """The head the fast relay sends when the shortcut declines: upstream_pieces, joined."""
    pieces = [b"GET", b" ", b"/a?b=%2F", b" HTTP/1.1\r\n"]
    upstream_pieces(
        raw, host=HOST, client_ip="192.0.2.1", scheme=scheme, rules=rules, pieces=pieces
    )
    return b"".join([*pieces, framing, b"\r\n"])


_REQUEST_NAMES = sorted(
    headers_module._UPSTREAM_SPECIAL
    | {b"proxy-authorization", b"accept", b"user-agent", b"x-connection", b"x-team", b"cookie"}
    | {b"x_custom", b"x_forwarded_for", b"keep_alive"}
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REQUEST_NAMES).flatmap(
                lambda name: st.sampled_from([name, name.title(), name.upper()])
            ),
            st.sampled_from(_VALUES),
        ),
        max_size=10,
    ),
    st.sampled_from([*_RULES, HeaderRules(add=[("X-Team", "core")], remove=["Cookie"])]),
    st.sampled_from(["http", "https"]),
    st.sampled_from([b"", b"Content-Length: 12\r\n", b"Transfer-Encoding: chunked\r\n"]),
)
def test_plain_request_head_is_the_general_head_whenever_it_answers(
    raw: list[tuple[bytes, bytes]], rules: HeaderRules, scheme: str, framing: bytes
) -> None:
    expected = general_request_head(raw, rules, scheme, framing)  # (names now classified)
    host_line = b"Host: " + HOST + b"\r\n"
    plain = plain_request_head(
        b"GET", b"/a?b=%2F", raw, host_line, "192.0.2.1", scheme, rules, framing
    )
    kinds = [rules.upstream_kinds[name] for name, _ in raw]
    copied_or_host = {headers_module._COPY, headers_module._HOST}
    if all(kind in copied_or_host for kind in kinds):
        assert plain == expected
    else:  # a header to drop, extend or remove: the general way
        assert plain is None


def test_plain_request_head_leaves_names_it_has_not_seen_to_the_general_way() -> None:
    rules = HeaderRules()
    raw = [(b"Host", b"proxy.test"), (b"X-New", b"1")]
    host_line = b"Host: " + HOST + b"\r\n"
    assert plain_request_head(b"GET", b"/", raw, host_line, "192.0.2.1", "http", rules, b"") is None
    general_request_head(raw, rules, "http", b"")  # classifies X-New
    head = plain_request_head(b"GET", b"/", raw, host_line, "192.0.2.1", "http", rules, b"")
    assert head == (
        b"GET / HTTP/1.1\r\nHost: upstream.test:8080\r\nX-New: 1\r\n"
        b"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: proxy.test\r\nVia: 1.1 ferryman\r\n\r\n"
    )


def test_a_connection_header_drops_neither_the_request_line_nor_the_hosts_line() -> None:
    """``Connection`` names the client's headers only: not the words of the request line that
    shares the pieces list, nor the Host this hop sets."""
    raw = [(b"Host", b"proxy.test"), (b"Connection", b"GET, Host, X-A"), (b"X-A", b"1")]
    head = general_request_head(raw, HeaderRules(), "http", b"")
    assert head.startswith(b"GET /a?b=%2F HTTP/1.1\r\nHost: upstream.test:8080\r\n")
    assert b"X-A" not in head
