"""Hostile and malformed requests against ``ferryman start``, on both roads through the proxy.

Each vector of :data:`REFUSED` must be answered by the proxy alone, with the status issue 20's
design gives (a JSON ``{"status": N, "message": ...}``) and, where the request's framing cannot be
trusted, a closed connection; its marker must never reach the upstream. Each vector of
:data:`RELAYED` must reach the upstream exactly once, as specified (extension methods, an
``Upgrade: h2c`` relayed as plain HTTP, targets right at the limits, dot segments that stay
inside the base path byte for byte). After every vector the proxy must still answer a normal
request. The defaults are under test: the ``plain`` proxy sets no limit of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.reliability.clients import (
    connect,
    exchange,
    judge,
    read_outcome,
    request,
    survives,
    upstream_saw,
)
from tests.reliability.hostile_upstream import HostileUpstream, new_rid
from tests.reliability.ledger import LEDGER
from tests.reliability.proxies import ROADS, RunningProxy, endpoint_name

Build = Callable[[str], bytes]


@dataclass(frozen=True)
class Refused:
    """A request the proxy must answer itself with ``status``, never relay."""

    id: str
    status: int
    build: Build
    #: The framing cannot be trusted: the connection must close after the answer.
    close: bool = True
    endpoint: str = "api"


def _headers(count: int, size: int = 1) -> bytes:
    return b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * size) for i in range(count))


def _chunked(body: bytes) -> Build:
    return lambda rid: request(
        rid, method=b"POST", headers=b"Transfer-Encoding: chunked\r\n", body=body
    )


def _escape(target: bytes) -> Refused:
    return Refused(
        f"base path escape {target.decode()}",
        400,
        lambda rid: request(rid, target=target),
        close=False,
        endpoint="base",
    )


REFUSED = [
    # -- sizes (issue 20, item 2): request line 414, one header, the head, the count 431
    Refused("request line over 8192", 414, lambda r: request(r, target=b"/echo?p=" + b"a" * 9000)),
    Refused("one header over 8192", 431, lambda r: request(r, headers=_headers(1, 9000))),
    Refused("head over 64 KiB", 431, lambda r: request(r, headers=_headers(10, 7000))),
    Refused("101 headers", 431, lambda r: request(r, headers=_headers(101))),
    Refused("20,000 headers", 431, lambda r: request(r, headers=_headers(20000))),
    # -- chunked request bodies: extensions and trailers are limited as heads are
    Refused(
        "chunk extension of 100 KB",
        400,
        _chunked(b"5;e=" + b"e" * 100_000 + b"\r\nhello\r\n0\r\n\r\n"),
    ),
    Refused("101 trailer fields", 400, _chunked(b"5\r\nhello\r\n0\r\n" + _headers(101) + b"\r\n")),
    Refused(
        "trailer field over 8192",
        400,
        _chunked(b"5\r\nhello\r\n0\r\n" + _headers(1, 9000) + b"\r\n"),
    ),
    # -- validation (item 7)
    Refused("HTTP/1.1 without Host", 400, lambda r: request(r, host=None), close=False),
    Refused(
        "two Host headers", 400, lambda r: request(r, headers=b"Host: other.test\r\n"), close=False
    ),
    Refused("Host with a space", 400, lambda r: request(r, host=b"proxy test"), close=False),
    Refused("Host with a slash", 400, lambda r: request(r, host=b"proxy.test/x"), close=False),
    Refused(
        "Host with a bad port", 400, lambda r: request(r, host=b"proxy.test:http"), close=False
    ),
    Refused(
        "CONNECT",
        405,
        lambda r: request(
            r, method=b"CONNECT", target=b"example.test:443", host=b"example.test:443"
        ),
        close=False,
    ),
    Refused(
        "asterisk target", 400, lambda r: request(r, method=b"OPTIONS", target=b"*"), close=False
    ),
    Refused(
        "authority-form GET", 400, lambda r: request(r, target=b"example.test:80"), close=False
    ),
    Refused("HTTP/2.0 request line", 505, lambda r: request(r, version=b"HTTP/2.0")),
    Refused("HTTP/3.0 request line", 505, lambda r: request(r, version=b"HTTP/3.0")),
    Refused(
        "Transfer-Encoding gzip, chunked",
        501,
        lambda r: request(
            r,
            method=b"POST",
            headers=b"Transfer-Encoding: gzip, chunked\r\n",
            body=b"5\r\nhello\r\n0\r\n\r\n",
        ),
    ),
    Refused(
        "Transfer-Encoding xchunked",
        501,
        lambda r: request(
            r, method=b"POST", headers=b"Transfer-Encoding: xchunked\r\n", body=b"0\r\n\r\n"
        ),
    ),
    Refused(
        "two different Content-Length",
        400,
        lambda r: request(
            r,
            method=b"POST",
            headers=b"Content-Length: 4\r\nContent-Length: 5\r\n",
            body=b"body!",
        ),
    ),
    Refused(
        "Upgrade h2c on a request with a body",
        400,
        lambda r: request(
            r,
            method=b"POST",
            headers=b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 4\r\n",
            body=b"body",
        ),
    ),
    # -- the base path (item 5): url is UPSTREAM/v1, /internal/x lies outside it
    _escape(b"/../internal/x"),
    _escape(b"/%2e%2e/internal/x"),
    _escape(b"/..%2finternal/x"),
    _escape(b"/%2E%2E/internal/x"),
    _escape(b"/x/../../internal/x"),
    _escape(b"/.%2e/internal/x"),
    _escape(b"/x/..%2F..%2Finternal/x"),
]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("vector", REFUSED, ids=[vector.id for vector in REFUSED])
async def test_a_bad_request_is_answered_by_the_proxy_alone(
    plain: RunningProxy, hostile: HostileUpstream, vector: Refused, road: str
) -> None:
    port = plain.port(endpoint_name(vector.endpoint, road))
    rid = new_rid("refused")
    LEDGER.request_vectors += 1
    outcome = await exchange(port, vector.build(rid))
    refusal = await judge(
        hostile, rid, outcome, vector.status, f"{vector.id} ({road})", close=vector.close
    )
    alive = await survives(port)
    refusal.check()
    assert alive, f"{vector.id}: the proxy stopped answering"


# -- what must be relayed, exactly once --------------------------------------------------------


@dataclass(frozen=True)
class Relayed:
    """A request the proxy must relay; ``check`` looks at what the upstream got."""

    id: str
    build: Build
    check: Callable[[dict[str, object]], bool]
    endpoint: str = "api"


def _names(seen: dict[str, object]) -> set[str]:
    headers = seen["headers"]
    assert isinstance(headers, list)
    return {str(name).lower() for name, _ in headers}


def _header(seen: dict[str, object], name: str) -> str:
    headers = seen["headers"]
    assert isinstance(headers, list)
    return ", ".join(str(value) for key, value in headers if str(key).lower() == name)


def _target_is(expected: bytes) -> Callable[[dict[str, object]], bool]:
    return lambda seen: str(seen["target"]).split("?")[0] == expected.decode()


RELAYED = [
    Relayed("method FOO", lambda r: request(r, method=b"FOO"), lambda s: s["method"] == "FOO"),
    Relayed(
        "method PURGE", lambda r: request(r, method=b"PURGE"), lambda s: s["method"] == "PURGE"
    ),
    Relayed(
        "Upgrade h2c without a body",
        lambda r: request(
            r,
            headers=b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        ),
        lambda s: (
            not {"upgrade", "http2-settings"} & _names(s)
            and "upgrade" not in _header(s, "connection").lower()
        ),
    ),
    Relayed(
        "HTTP/1.0 without Host",
        lambda r: request(r, version=b"HTTP/1.0", host=None),
        lambda s: s["method"] == "GET",
    ),
    Relayed(
        "request line of 8000 bytes",
        lambda r: request(r, target=b"/echo?p=" + b"a" * 7900),
        lambda s: len(str(s["target"])) > 7900,
    ),
    Relayed(
        "a header of 8000 bytes",
        lambda r: request(r, headers=_headers(1, 7980)),
        lambda s: len(_header(s, "x-pad-0")) == 7980,
    ),
    Relayed(
        "95 headers", lambda r: request(r, headers=_headers(95)), lambda s: "x-pad-94" in _names(s)
    ),
    Relayed(
        "a head of 49 KB",
        lambda r: request(r, headers=_headers(7, 7000)),
        lambda s: "x-pad-6" in _names(s),
    ),
    Relayed(
        "dot segments inside the base path",
        lambda r: request(r, target=b"/x/../echo"),
        _target_is(b"/v1/x/../echo"),
        endpoint="base",
    ),
    Relayed(
        "a segment that only starts with dots",
        lambda r: request(r, target=b"/..hidden/echo"),
        _target_is(b"/v1/..hidden/echo"),
        endpoint="base",
    ),
]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("vector", RELAYED, ids=[vector.id for vector in RELAYED])
async def test_a_valid_request_reaches_the_upstream_once_as_specified(
    plain: RunningProxy, hostile: HostileUpstream, vector: Relayed, road: str
) -> None:
    port = plain.port(endpoint_name(vector.endpoint, road))
    rid = new_rid("relayed")
    LEDGER.request_vectors += 1
    outcome = await exchange(port, vector.build(rid))
    reached = await upstream_saw(hostile, rid)
    assert outcome.response is not None, f"{vector.id}: {outcome.describe()}"
    assert outcome.status == 200, f"{vector.id}: {outcome.describe()}"
    seen = outcome.response.json()
    assert isinstance(seen, dict)
    as_specified = reached == 1 and vector.check(seen)
    if as_specified:
        LEDGER.relayed += 1
    assert reached == 1
    assert as_specified, f"{vector.id}: the upstream got {seen}"


async def test_a_pipelined_good_request_is_answered_before_the_bad_one_is_refused(
    plain: RunningProxy, hostile: HostileUpstream
) -> None:
    for road in ROADS:
        port = plain.port(endpoint_name("api", road))
        good, bad = new_rid("pipelined-good"), new_rid("pipelined-bad")
        LEDGER.request_vectors += 1
        client = await connect(port)
        await client.send(request(good) + request(bad, headers=b"A header without a colon\r\n"))
        first = await read_outcome(client.reader)
        second = await read_outcome(client.reader)
        client.close()
        refusal = await judge(hostile, bad, second, 400, f"pipelined bad request ({road})")
        assert first.response is not None, f"{road}: the good request: {first.describe()}"
        assert first.status == 200
        assert good in str(first.response.json())
        refusal.check()


# -- headers the client must not choose ---------------------------------------------------------

FORGED = (
    b"Forwarded: for=6.6.6.6;host=evil.test;proto=https\r\n"
    b"X-Real-IP: 6.6.6.6\r\n"
    b"X-Forwarded-For: 6.6.6.6\r\n"
    b"X-Forwarded-Host: evil.test\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"X_Forwarded_Host: evil.test\r\n"
    b"X_Real_IP: 6.6.6.6\r\n"
    b"X_Custom_Name: underscored\r\n"
)


@pytest.mark.parametrize("road", ROADS)
async def test_forwarding_headers_from_a_client_are_replaced_and_underscores_dropped(
    plain: RunningProxy, hostile: HostileUpstream, road: str
) -> None:
    port = plain.port(endpoint_name("api", road))
    rid = new_rid("forged")
    LEDGER.request_vectors += 1
    outcome = await exchange(port, request(rid, headers=FORGED))
    assert outcome.response is not None and outcome.status == 200, outcome.describe()
    seen = outcome.response.json()
    assert isinstance(seen, dict)
    headers = [(str(name), str(value)) for name, value in seen["headers"]]
    forged = [
        (name, value)
        for name, value in headers
        if "_" in name or "6.6.6.6" in value or "evil.test" in value or value == "https"
    ]
    as_specified = (
        not forged
        and _header(seen, "x-forwarded-for") == "127.0.0.1"
        and _header(seen, "x-forwarded-host") == "proxy.test"
        and _header(seen, "x-forwarded-proto") == "http"
    )
    if as_specified:
        LEDGER.relayed += 1
    assert not forged, f"client-chosen forwarding headers reached the upstream: {forged}"
    assert _header(seen, "x-forwarded-for") == "127.0.0.1"
    assert _header(seen, "x-forwarded-host") == "proxy.test"
    assert _header(seen, "x-forwarded-proto") == "http"


@pytest.mark.parametrize("road", ROADS)
async def test_header_rules_remove_what_the_proxy_adds(
    plain: RunningProxy, hostile: HostileUpstream, road: str
) -> None:
    """``request_headers: {remove: [Via, X-Forwarded-For]}``, ``response_headers: {remove:
    [Via]}``: neither ferryman's own Via nor its X-Forwarded-For goes out."""
    port = plain.port(endpoint_name("rules", road))
    LEDGER.request_vectors += 1
    outcome = await exchange(port, request(new_rid("rules"), headers=b"Via: 1.1 client\r\n"))
    assert outcome.response is not None and outcome.status == 200, outcome.describe()
    seen = outcome.response.json()
    assert isinstance(seen, dict)
    sent_upstream = _names(seen) & {"via", "x-forwarded-for"}
    sent_back = outcome.response.names & {"via"}
    if not sent_upstream and not sent_back:
        LEDGER.relayed += 1
    assert not sent_upstream, f"the rules did not remove {sent_upstream} from the request"
    assert not sent_back, "the rules did not remove Via from the response"
