"""The fast relay (EndpointRelay on ferryman's own server) as clients and upstreams see it.

Every test puts a relay on 127.0.0.1 in front of a real upstream: the scripted upstream of
tests/servers/slow_upstream.py (which records the raw requests it gets), uvicorn serving the
shared echo app, or httpbin. Clients are raw sockets, so what is checked is what is on the wire.
Failures (refused, slow, cut-off upstreams) are in test_relay_faults.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

import ferryman
from ferryman.proxy.headers import HeaderRules
from ferryman.proxy.rewrite import Rewrite
from ferryman.server.protocol import ServerLimits
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.relay_harness import StartRelay
from tests.servers.slow_upstream import (
    RawResponse,
    ScriptedUpstream,
    pattern,
    read_response,
    roundtrip,
    wait_until,
)
from tests.servers.uvicorn_server import UvicornServer
from tests.servers.ws_echo import WsEchoServer


@pytest.fixture(scope="module")
def ws_server() -> Iterator[WsEchoServer]:
    server = WsEchoServer().start()
    yield server
    server.stop()


def upstream_saw(response: RawResponse) -> dict[str, Any]:
    """The scripted upstream's echo of the request it got."""
    assert response.status == 200, response
    payload = response.json()
    assert isinstance(payload, dict)
    return payload


def names(headers: list[list[str]]) -> set[str]:
    return {name.lower() for name, _ in headers}


def values(headers: list[list[str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


# -- targets and methods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/a%2Fb?x=%20&x=2",
        b"/caf%C3%A9/%7Euser;param?q=a+b&q=%2B&empty=&flag",
        b"/",
        b"/path/with//double/slashes/?",
        b"/%25percent%2525?%FF=%00",
    ],
)
async def test_the_target_reaches_the_upstream_byte_for_byte(
    start_relay: StartRelay, upstream: ScriptedUpstream, target: bytes
) -> None:
    relay = await start_relay(upstream.url)
    seen = upstream_saw(await relay.get(target))
    assert seen["target"].encode("latin-1") == target
    assert seen["version"] == "HTTP/1.1"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_methods_and_bodies_reach_the_uvicorn_echo_app(
    start_relay: StartRelay, uvicorn_server: UvicornServer, method: str
) -> None:
    relay = await start_relay(uvicorn_server.url)
    body = b"" if method in ("GET", "OPTIONS") else b"payload for " + method.encode()
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    response = await roundtrip(
        relay.port,
        b"%s /echo/path?x=%%20&y=2 HTTP/1.1\r\nHost: proxy.test\r\n%s\r\n%s"
        % (method.encode(), length, body),
    )
    assert response.status == 200
    echo = response.json()
    assert isinstance(echo, dict)
    assert (echo["method"], echo["path"], echo["query"]) == (method, "/echo/path", "x=%20&y=2")
    assert echo["body"].encode("latin-1") == body


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_methods_against_httpbin(
    start_relay: StartRelay, httpbin: HttpbinServer, method: str
) -> None:
    relay = await start_relay(httpbin.url)
    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.request(
            method, f"{relay.url}/anything/a%2Fb?x=%20&x=2&show_env=1", content=b'{"k": 1}'
        )
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == method
    assert echo["data"] == '{"k": 1}'
    assert echo["args"] == {"x": [" ", "2"], "show_env": "1"}
    assert echo["headers"]["Host"] == f"127.0.0.1:{httpbin.port}"
    assert echo["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert response.headers["via"] == "1.1 ferryman"


async def test_an_absolute_form_target_is_sent_in_origin_form(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    seen = upstream_saw(await relay.get(b"http://proxy.test/abs/path?q=1"))
    assert seen["target"] == "/abs/path?q=1"


# -- headers ---------------------------------------------------------------------------------


async def test_hop_by_hop_request_headers_are_removed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    seen = upstream_saw(
        await relay.get(
            b"/echo",
            b"Connection: keep-alive, X-Client-Secret\r\nX-Client-Secret: 1\r\n"
            b"Keep-Alive: timeout=10\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n"
            b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n"
            b"X-End-To-End: kept\r\n",
        )
    )
    got = names(seen["headers"])
    for hop in (
        "connection",
        "x-client-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ):
        assert hop not in got, hop
    assert values(seen["headers"], "X-End-To-End") == ["kept"]


async def test_hop_by_hop_response_headers_are_removed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(b"/hop")
    assert response.body == b"hop"
    for hop in (
        "x-upstream-secret",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "trailer",
        "upgrade",
    ):
        assert hop not in response.names, hop
    assert response.header("connection") is None  # kept alive, nothing to say
    assert response.header("x-kept") == "yes" and response.header("server") == "scripted"
    assert response.all("via") == ["1.0 upstream-cache, 1.1 ferryman"]


async def test_forwarding_headers_are_added(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    seen = upstream_saw(await relay.get(b"/echo"))
    headers = seen["headers"]
    assert values(headers, "Host") == [f"127.0.0.1:{upstream.port}"]
    assert values(headers, "X-Forwarded-For") == ["127.0.0.1"]
    assert values(headers, "X-Forwarded-Proto") == ["http"]
    assert values(headers, "X-Forwarded-Host") == ["proxy.test"]
    assert values(headers, "Via") == ["1.1 ferryman"]


async def test_forwarding_headers_of_a_trusted_proxy_are_appended_to(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """From a trusted proxy; from anyone else they are replaced (test_trust_boundaries.py)."""
    relay = await start_relay(
        upstream.url, request_rules=HeaderRules(trusted_proxies=["127.0.0.1"])
    )
    seen = upstream_saw(
        await relay.get(
            b"/echo",
            b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"Via: 1.0 edge\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed\r\n",
        )
    )
    headers = seen["headers"]
    assert values(headers, "X-Forwarded-For") == ["203.0.113.7, 10.0.0.1, 127.0.0.1"]
    assert values(headers, "Via") == ["1.0 edge, 1.1 ferryman"]
    # What the trusted proxy says of its client's connection stands.
    assert values(headers, "X-Forwarded-Proto") == ["https"]
    assert values(headers, "X-Forwarded-Host") == ["spoofed"]


async def test_preserve_host_keeps_the_client_host(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, preserve_host=True)
    seen = upstream_saw(await relay.get(b"/echo"))
    assert values(seen["headers"], "Host") == ["proxy.test"]


async def test_header_rules_add_and_remove_both_ways(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(
        upstream.url,
        request_rules=HeaderRules(add=[("X-Team", "core")], remove=["Cookie", "x-debug"]),
        response_rules=HeaderRules(add=[("X-Served-By", "ferryman")], remove=["server"]),
    )
    response = await relay.get(
        b"/hop", b"Cookie: a=1\r\nX-Debug: on\r\nX-Team: client-says\r\nX-Other: 1\r\n"
    )
    assert "server" not in response.names
    assert response.all("x-served-by") == ["ferryman"]
    seen = upstream.requests[-1]
    assert seen.header("cookie") is None and seen.header("x-debug") is None
    assert seen.all("x-team") == ["core"]  # replaced, not doubled
    assert seen.header("x-other") == "1"


async def test_a_request_seen_again_reaches_the_upstream_as_it_did_the_first_time(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """The first request of its kind classifies its header names on the general way; the next
    ones take the shortcut (``plain_request_head``): the upstream must not tell them apart."""
    relay = await start_relay(
        upstream.url, request_rules=HeaderRules(add=[("X-Team", "core")], remove=["Cookie"])
    )
    for _ in range(3):
        await relay.get(b"/same?q=%2F", b"Accept: */*\r\nX-Trace: 7\r\n")
    first, *later = upstream.requests[-3:]
    assert first.target == "/same?q=%2F"
    assert first.headers == [
        ("Host", f"127.0.0.1:{upstream.port}"),
        ("Accept", "*/*"),
        ("X-Trace", "7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "proxy.test"),
        ("Via", "1.1 ferryman"),
        ("X-Team", "core"),
    ]
    for request in later:
        assert (request.method, request.target, request.headers) == (
            first.method,
            first.target,
            first.headers,
        )


async def test_no_default_headers_are_added(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    upstream_saw(await relay.get(b"/echo"))
    assert upstream.requests[-1].names == {
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "via",
    }


async def test_header_name_case_is_kept(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    seen = upstream_saw(await relay.get(b"/echo", b"x-lower: 1\r\nX-UPPER: 2\r\nX-MiXeD: 3\r\n"))
    sent = [name for name, _ in seen["headers"]]
    assert {"x-lower", "X-UPPER", "X-MiXeD"} <= set(sent)


# -- rewrite and base path -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "rewrite", "target", "expected"),
    [
        ("/v1", None, b"/x?q=1", "/v1/x?q=1"),
        ("/v1/", None, b"/x/a%2Fb", "/v1/x/a%2Fb"),
        ("", Rewrite("/api", "/"), b"/api/a%2Fb?q=1", "/a%2Fb?q=1"),
        ("", Rewrite("/api", "/"), b"/api?q=1", "/?q=1"),
        ("", Rewrite("/api", "/"), b"/apis/x", "/apis/x"),
        ("", Rewrite("/api", "/v2"), b"/api/users", "/v2/users"),
        ("/base", Rewrite("/api", "/v2"), b"/api/users?x", "/base/v2/users?x"),
        ("/base", Rewrite("/api", "/"), b"/api/users", "/base/users"),
    ],
)
async def test_rewrite_and_base_path_shape_the_upstream_target(
    start_relay: StartRelay,
    upstream: ScriptedUpstream,
    base: str,
    rewrite: Rewrite | None,
    target: bytes,
    expected: str,
) -> None:
    relay = await start_relay(upstream.url + base, rewrite=rewrite)
    assert upstream_saw(await relay.get(target))["target"] == expected


# -- bodies ----------------------------------------------------------------------------------


async def test_a_content_length_body_is_sent_with_its_length(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await roundtrip(
        relay.port,
        b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 11\r\n\r\nhello world",
    )
    seen = upstream_saw(response)
    assert seen["body"] == "hello world" and not seen["chunked"]
    assert values(seen["headers"], "Content-Length") == ["11"]


async def test_a_chunked_request_body_is_re_chunked_upstream(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"one;", b"two;", b"three"):
        writer.write(b"%x;ext=x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(0.02)
    writer.write(b"0\r\n\r\n")
    seen = upstream_saw(await read_response(reader))
    assert seen["chunked"] and seen["body"] == "one;two;three"
    assert "content-length" not in names(seen["headers"])
    writer.close()


async def test_an_upstream_chunked_answer_reaches_the_client_whole(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(b"/big?size=300000&chunked=1")
    assert response.chunked and response.body == pattern(300000)


async def test_the_response_streams_while_the_request_body_is_still_coming(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """Full duplex: each piece the client sends comes back before it sends the next (with
    request buffering off: a buffered body would reach the upstream only once it had all
    come)."""
    relay = await start_relay(upstream.url, request_buffer=0)
    reader, writer = await relay.connect()
    writer.write(b"POST /echo-stream HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"5\r\nfirst\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.readuntil(b"first\r\n"), 5) == b"5\r\nfirst\r\n"
    for i in range(5):
        piece = b"piece-%d" % i
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        echoed = await asyncio.wait_for(reader.readuntil(piece + b"\r\n"), 5)
        assert echoed == b"%x\r\n%s\r\n" % (len(piece), piece)
    writer.write(b"0\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5) == b"0\r\n\r\n"
    writer.close()


BIG = 50 * 1024 * 1024


async def test_a_50_mib_download_streams_through(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET /big?size=%d HTTP/1.1\r\nHost: p\r\n\r\n" % BIG)
    response = await read_response(reader, head_only=True)
    assert response.header("content-length") == str(BIG)
    digest = hashlib.sha256()
    left = BIG
    while left:
        data = await asyncio.wait_for(reader.read(min(left, 1 << 20)), 10)
        assert data
        digest.update(data)
        left -= len(data)
    assert digest.hexdigest() == hashlib.sha256(pattern(BIG)).hexdigest()
    writer.close()


async def test_long_and_short_bodies_alternate_on_one_connection_byte_exact(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """A long body is read into a large buffer from the pool's spares, and the buffer goes back
    when the body ends: the bodies after it, long or short, must come out whole and unmixed."""
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    sizes = [3 << 20, 100, (1 << 20) + 7, 65 * 1024, 0, 5 << 20, 1]
    for size in sizes:
        writer.write(b"GET /big?size=%d HTTP/1.1\r\nHost: p\r\n\r\n" % size)
        response = await read_response(reader, timeout=10)
        assert response.status == 200
        assert response.body == pattern(size), size
    writer.close()
    # One upstream connection served them all, and its large buffer is back among the spares.
    (pool,) = relay.relay.pools
    assert len(pool.spare_buffers) == 1
    assert upstream_saw(await relay.get(b"/echo"))


async def test_a_50_mib_upload_streams_through(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    data = pattern(BIG)
    writer.write(b"PUT /sink HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n" % BIG)
    for start in range(0, BIG, 1 << 20):
        writer.write(data[start : start + (1 << 20)])
        await writer.drain()
    response = await read_response(reader, timeout=30)
    assert response.body == b"%d %s %s" % (BIG, data[:4].hex().encode(), data[-4:].hex().encode())
    writer.close()


async def test_a_chunked_50_mib_upload_streams_through(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    data = pattern(BIG)
    writer.write(b"PUT /sink HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n")
    for start in range(0, BIG, 1 << 20):
        writer.write(b"100000\r\n" + data[start : start + (1 << 20)] + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    response = await read_response(reader, timeout=30)
    assert response.body.split()[0] == b"%d" % BIG
    writer.close()


async def test_expect_100_continue_goes_through(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"data")
    response = await read_response(reader)
    assert upstream_saw(response)["body"] == "data"
    writer.close()


# -- special answers -------------------------------------------------------------------------


async def test_head_answers_carry_no_body_and_the_connections_stay_usable(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    for _ in range(2):
        writer.write(b"HEAD /big?size=5000 HTTP/1.1\r\nHost: p\r\n\r\n")
        response = await read_response(reader, head_only=True)
        assert response.status == 200 and response.header("content-length") == "5000"
        writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
        assert upstream_saw(await read_response(reader))["method"] == "GET"
    writer.close()


async def test_head_against_an_upstream_that_sends_the_length_of_a_get(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """The echo route answers HEAD with a body length: no body bytes follow the head."""
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    upstream.reset()
    writer.write(b"HEAD /status?code=200 HTTP/1.1\r\nHost: p\r\n\r\n")
    response = await read_response(reader, head_only=True)
    assert response.status == 200
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
    assert upstream_saw(await read_response(reader))["target"] == "/echo"
    writer.close()


@pytest.mark.parametrize("code", [204, 304])
async def test_no_body_statuses_pass_through(
    start_relay: StartRelay, upstream: ScriptedUpstream, code: int
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    for _ in range(2):
        writer.write(b"GET /status?code=%d HTTP/1.1\r\nHost: p\r\n\r\n" % code)
        response = await read_response(reader)
        assert response.status == code and response.reason == "Custom"
        assert response.header("etag") == '"v1"'
        assert response.header("transfer-encoding") is None
        if code == 304:
            assert response.header("content-length") == "1234"
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
    assert upstream_saw(await read_response(reader))["target"] == "/echo"
    writer.close()


async def test_the_reason_phrase_is_relayed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(b"/status?code=418")
    assert (response.status, response.reason, response.body) == (
        418,
        "Custom Reason",
        b"body of 418",
    )


@pytest.mark.parametrize(
    "path",
    [b"/early-hints", b"/early-hints-split"],  # split: the final head ends in the next read
)
async def test_early_hints_are_not_mistaken_for_the_answer(
    start_relay: StartRelay, upstream: ScriptedUpstream, path: bytes
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(path)
    assert (response.status, response.body) == (200, b"final")
    assert response.header("x-after") == "hints"


API_HEADERS = [
    ("Server", "api-gateway"),
    ("Content-Type", "application/json; charset=utf-8"),
    ("Cache-Control", "private, max-age=60"),
    ("X-RateLimit-Limit", "5000"),
    ("X-RateLimit-Remaining", "4999"),
    ("Connection-Id", "17"),
    ("X-Connection", "upstream-only-by-name"),
    ("TE-Hint", "none"),
    ("Via-Region", "eu-west"),
    ("Set-Cookie", "a=1"),
    ("Set-Cookie", "b=2"),
    ("X-Spaced", "padded"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Request-Id", "7f3c2a9e-5b1d-4c8e-9a2f-0d6e1b3c4a5f"),
]


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_long_ordinary_head_keeps_its_headers_in_order_without_hop_by_hop_ones(
    start_relay: StartRelay, upstream: ScriptedUpstream, chunked: bool
) -> None:
    """Long heads like many APIs send: relayed from their bytes (``plain_response_lines``)."""
    upstream.reset()
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    for _ in range(3):  # the upstream connection is reused with the parser it used
        writer.write(b"GET /api?chunked=%d HTTP/1.1\r\nHost: p\r\n\r\n" % chunked)
        response = await read_response(reader)
        assert (response.status, response.body) == (200, b'{"id": 4711}')
        if chunked:  # relayed chunked again: the framing comes after ``Via``
            expected = [*API_HEADERS, ("Via", "1.1 ferryman"), ("Transfer-Encoding", "chunked")]
        else:
            expected = [*API_HEADERS, ("Content-Length", "12"), ("Via", "1.1 ferryman")]
        assert response.headers == expected
    writer.close()
    asked = [seen.connection for seen in upstream.requests if seen.target.startswith("/api")]
    assert len(asked) == 3 and len(set(asked)) == 1


async def test_a_long_head_with_via_or_rules_takes_the_general_way(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(b"/api?via=1.0%20cdn")
    assert response.all("via") == ["1.0 cdn, 1.1 ferryman"]  # extended, not doubled
    assert "keep-alive" not in response.names and response.header("x-spaced") == "padded"
    ruled = await start_relay(
        upstream.url,
        response_rules=HeaderRules(add=[("X-Served-By", "ferryman")], remove=["server"]),
    )
    response = await ruled.get(b"/api")
    assert "server" not in response.names and response.all("x-served-by") == ["ferryman"]
    assert "proxy-authenticate" not in response.names and response.body == b'{"id": 4711}'


async def test_a_close_delimited_http_1_0_answer_is_chunked_for_an_http_1_1_client(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET /http10?parts=4 HTTP/1.1\r\nHost: p\r\n\r\n")
    response = await read_response(reader)
    assert response.chunked and response.body == b"part0;part1;part2;part3;"
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")  # the client keeps its connection
    assert upstream_saw(await read_response(reader))["target"] == "/echo"
    writer.close()


async def test_a_close_delimited_answer_to_an_http_1_0_client_ends_with_the_connection(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await roundtrip(
        relay.port, b"GET /http10 HTTP/1.0\r\nHost: p\r\nConnection: keep-alive\r\n\r\n"
    )
    assert response.close_delimited and response.body == b"part0;part1;part2;"
    assert response.header("connection") == "close"


async def test_an_http_1_0_client_is_answered_and_closed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET /echo HTTP/1.0\r\nHost: p\r\n\r\n")
    response = await read_response(reader)
    assert response.header("connection") == "close"
    # The upstream is spoken to in HTTP/1.1 whatever the client speaks.
    assert upstream_saw(response)["version"] == "HTTP/1.1"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


async def test_an_http_1_0_client_asking_for_keep_alive_keeps_it(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    for i in range(2):
        writer.write(b"GET /echo?%d HTTP/1.0\r\nHost: p\r\nConnection: keep-alive\r\n\r\n" % i)
        response = await read_response(reader)
        assert response.header("connection") == "keep-alive"
        assert upstream_saw(response)["target"] == f"/echo?{i}"
    writer.close()


async def test_an_http_1_0_client_gets_a_chunked_upstream_answer_close_delimited(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await roundtrip(
        relay.port,
        b"GET /big?size=100000&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    assert response.close_delimited and response.body == pattern(100000)


async def test_connection_close_from_the_client_closes_after_the_answer(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
    response = await read_response(reader)
    assert response.header("connection") == "close"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


# -- connections to the upstream -------------------------------------------------------------


async def test_upstream_connections_are_kept_alive_and_reused(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    before = upstream.connections
    reader, writer = await relay.connect()
    for _ in range(5):
        writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
        upstream_saw(await read_response(reader))
    writer.close()
    for _ in range(3):  # other clients, one after the other: the same upstream connection
        upstream_saw(await relay.get(b"/echo"))
    assert upstream.connections - before == 1


async def test_an_upstream_connection_close_is_honoured(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    before = upstream.connections
    reader, writer = await relay.connect()
    writer.write(b"GET /close HTTP/1.1\r\nHost: p\r\n\r\n")
    response = await read_response(reader)
    assert response.body == b"closing"
    assert response.header("connection") is None  # the client keeps its own connection
    writer.write(b"GET /echo HTTP/1.1\r\nHost: p\r\n\r\n")
    upstream_saw(await read_response(reader))
    assert upstream.connections - before == 2
    writer.close()


async def test_concurrent_requests_each_get_their_own_answer(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)

    async def one(i: int) -> str:
        response = await roundtrip(
            relay.port,
            b"POST /echo?%d HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n%d"
            % (i, len(str(i)), i),
        )
        seen = upstream_saw(response)
        assert seen["target"] == f"/echo?{i}"
        return str(seen["body"])

    assert await asyncio.gather(*(one(i) for i in range(60))) == [str(i) for i in range(60)]


async def test_requests_beyond_max_connections_wait_for_a_free_one(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, max_connections=2)
    before = upstream.connections
    responses = await asyncio.gather(*(relay.get(b"/slow?delay=0.2") for _ in range(6)))
    assert [response.body for response in responses] == [b"late"] * 6
    assert upstream.connections - before <= 2


async def test_pipelined_requests_are_relayed_in_order(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(
        b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: p\r\n\r\n"
        b"GET /echo?2 HTTP/1.1\r\nHost: p\r\n\r\n"
        b"POST /echo?3 HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert (await read_response(reader)).body == b"late"
    assert upstream_saw(await read_response(reader))["target"] == "/echo?2"
    third = upstream_saw(await read_response(reader))
    assert (third["target"], third["body"]) == ("/echo?3", "abc")
    writer.close()


async def test_round_robin_over_two_upstreams(start_relay: StartRelay) -> None:
    first, second = ScriptedUpstream().start(), ScriptedUpstream().start()
    try:
        relay = await start_relay(first.url, second.url)
        for _ in range(6):
            upstream_saw(await relay.get(b"/echo"))
        assert (len(first.requests), len(second.requests)) == (3, 3)
    finally:
        first.stop()
        second.stop()


# -- upgrades --------------------------------------------------------------------------------


#: A listener that takes the scripted upstream's own protocol besides WebSockets.
RAW_ECHO = ServerLimits(upgrades=["websocket", "raw-echo"])


async def test_a_101_switches_the_connection_to_a_tunnel_both_ways(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, limits=RAW_ECHO)
    reader, writer = await relay.connect()
    writer.write(
        b"GET /upgrade HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: raw-echo\r\n\r\n"
    )
    response = await read_response(reader)
    assert response.status == 101
    assert response.header("upgrade") == "raw-echo"
    assert (response.header("connection") or "").lower() == "upgrade"
    assert response.header("x-switched") == "yes"
    seen = upstream.requests[-1]
    assert seen.header("upgrade") == "raw-echo"
    assert (seen.header("connection") or "").lower() == "upgrade"
    for message in (b"hello", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256))):
        writer.write(message)
        expected = b"echo:" + message
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
    writer.close()


async def test_an_upgrade_not_configured_is_relayed_as_plain_http(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """Issue 20, item 6: ``Upgrade: h2c`` (any protocol but the endpoint's ``upgrades``) opens
    no tunnel: the request goes upstream without its Upgrade, and what the client sends next
    is parsed as HTTP and goes through the endpoint's header rules (a forged X-Api-Key that
    the rules remove never reaches the upstream)."""
    relay = await start_relay(upstream.url, request_rules=HeaderRules(remove=["X-Api-Key"]))
    upstream.reset()
    reader, writer = await relay.connect()
    writer.write(
        b"GET /echo?first HTTP/1.1\r\nHost: p\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        b"GET /echo?second HTTP/1.1\r\nHost: p\r\nX-Api-Key: forged\r\n\r\n"
    )
    first = await read_response(reader)
    second = await read_response(reader)
    assert (first.status, second.status) == (200, 200)
    seen = upstream.requests
    assert [r.target for r in seen] == ["/echo?first", "/echo?second"]
    assert "upgrade" not in seen[0].names and "http2-settings" not in seen[0].names
    assert (seen[0].header("connection") or "").lower() != "upgrade"
    assert "x-api-key" not in seen[1].names
    writer.close()


async def test_a_client_leaving_a_tunnel_closes_the_upstream_side(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, limits=RAW_ECHO)
    reader, writer = await relay.connect()
    writer.write(
        b"GET /upgrade HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: raw-echo\r\n\r\n"
    )
    assert (await read_response(reader)).status == 101
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(9), 5) == b"echo:ping"
    assert upstream.open_connections() == 1
    writer.transport.abort()  # no close handshake: the tunnel just loses its client
    assert await wait_until(lambda: upstream.open_connections() == 0)


async def test_a_101_nobody_asked_for_is_a_502(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(b"/switch-unasked", timeout=3)
    assert response.status == 502
    assert "switched protocols unasked" in response.json()["message"]  # type: ignore[index]


async def test_a_websocket_goes_through_the_tunnel(
    start_relay: StartRelay, ws_server: WsEchoServer
) -> None:
    from websockets.asyncio.client import connect

    relay = await start_relay(f"http://127.0.0.1:{ws_server.port}")
    async with (
        asyncio.timeout(5),
        connect(
            f"ws://127.0.0.1:{relay.port}/echo", max_size=None, open_timeout=3, close_timeout=1
        ) as ws,
    ):
        await ws.send("hello")
        assert await ws.recv() == "hello"
        big = bytes(range(256)) * 4096
        await ws.send(big)
        assert await ws.recv() == big
    headers = ws_server.request_headers.get(timeout=5)
    assert headers["host"] == f"127.0.0.1:{ws_server.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["via"] == "1.1 ferryman"


async def test_a_websocket_close_code_goes_through(
    start_relay: StartRelay, ws_server: WsEchoServer
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    relay = await start_relay(f"http://127.0.0.1:{ws_server.port}")
    async with (
        asyncio.timeout(5),
        connect(f"ws://127.0.0.1:{relay.port}/close-4001", open_timeout=3, close_timeout=1) as ws,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_a_refused_websocket_handshake_is_relayed(
    start_relay: StartRelay, ws_server: WsEchoServer
) -> None:
    relay = await start_relay(f"http://127.0.0.1:{ws_server.port}")
    response = await roundtrip(
        relay.port,
        b"GET /forbidden HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert response.status == 403
    assert b"no WebSocket for you" in response.body


async def test_ferrymans_client_websocket_through_the_relay(
    start_relay: StartRelay, ws_server: WsEchoServer
) -> None:
    relay = await start_relay(f"http://127.0.0.1:{ws_server.port}")
    async with asyncio.timeout(5), ferryman.AsyncClient(trust_env=False) as client:
        ws = await client.get(f"ws://127.0.0.1:{relay.port}/echo")
        assert isinstance(ws, ferryman.WebSocketConnection)
        await ws.send("through ferryman")
        assert await anext(aiter(ws)) == "through ferryman"
        await ws.close(1000, "bye")
        assert ws.close_code == 1000


async def test_a_tunnel_idle_both_ways_is_closed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """An upgraded connection holds a socket each side: one that carries nothing either way
    for tunnel_idle seconds is closed; bytes in either direction keep it open."""
    relay = await start_relay(
        upstream.url, limits=ServerLimits(upgrades=["raw-echo"], tunnel_idle=1)
    )
    reader, writer = await relay.connect()
    writer.write(
        b"GET /upgrade HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: raw-echo\r\n\r\n"
    )
    assert (await read_response(reader)).status == 101
    for _ in range(4):  # 2 s of traffic, past the timeout: kept open
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(9), 3) == b"echo:ping"
        await asyncio.sleep(0.5)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # then silent: closed
    writer.close()
    # Bytes from the upstream alone keep it open too (a feed the client only listens to).
    reader, writer = await relay.connect()
    writer.write(
        b"GET /upgrade?push=5 HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\n"
        b"Upgrade: raw-echo\r\n\r\n"
    )
    assert (await read_response(reader)).status == 101
    assert await asyncio.wait_for(reader.readexactly(20), 5) == b"tick" * 5
    writer.write(b"still here")
    assert await asyncio.wait_for(reader.readexactly(15), 3) == b"echo:still here"
    writer.close()
