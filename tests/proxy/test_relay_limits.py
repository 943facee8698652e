"""The fast relay's limits and waits (issue 20, items 2, 4 and 7): what a client may ask of an
endpoint, what an upstream may send back, and who waits for an upstream connection how long.

What a client must see: a JSON 4xx for its own excess that never reaches the upstream, a 502
for an upstream's, a 503 when no upstream connection comes free in time; and slow clients hold
no upstream connection while they send a body.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ferryman.proxy import HTTPProxyHandler, ProxyContext
from tests.proxy.conftest import Serve
from tests.servers.relay_harness import StartRelay
from tests.servers.slow_upstream import (
    RawResponse,
    ScriptedUpstream,
    read_response,
    roundtrip,
    wait_until,
)


def error_of(response: RawResponse) -> dict[str, Any]:
    payload = response.json()
    assert isinstance(payload, dict)
    assert payload["status"] == response.status
    return payload


# -- what a client may ask -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_head", "status", "message"),
    [
        (
            b"CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\n\r\n",
            405,
            "CONNECT is for forward proxies; this is a reverse proxy",
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: p\r\n\r\n",
            400,
            "the request target must be a path (or an absolute URL)",
        ),
        (
            b"GET upstream.test:80 HTTP/1.1\r\nHost: p\r\n\r\n",
            400,
            None,  # (llhttp's own words)
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 11\r\n\r\n",
            413,
            "the request body is larger than 10 bytes",
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
            413,
            "the request body is larger than 10 bytes",
        ),
    ],
    ids=["CONNECT", "asterisk", "authority form", "Content-Length over", "chunked over"],
)
async def test_requests_an_endpoint_does_not_take_never_reach_the_upstream(
    start_relay: StartRelay,
    upstream: ScriptedUpstream,
    request_head: bytes,
    status: int,
    message: str | None,
) -> None:
    relay = await start_relay(upstream.url, body_limit=10)
    upstream.reset()
    response = await roundtrip(relay.port, request_head)
    assert response.status == status
    assert message is None or error_of(response)["message"] == message
    await asyncio.sleep(0.1)
    assert upstream.requests == []


async def test_an_absolute_form_target_is_still_relayed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    response = await roundtrip(relay.port, b"GET http://p/echo?abs HTTP/1.1\r\nHost: p\r\n\r\n")
    assert response.json()["target"] == "/echo?abs"  # type: ignore[index]


async def test_extension_methods_are_relayed(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    for method in (b"PURGE", b"FOO"):
        response = await roundtrip(relay.port, b"%s /echo HTTP/1.1\r\nHost: p\r\n\r\n" % method)
        assert response.json()["method"] == method.decode()  # type: ignore[index]


# -- slow clients and the upstream pool -------------------------------------------------------


async def test_a_slow_uploader_holds_no_upstream_connection(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """The body is read before an upstream connection is taken (up to request_buffer bytes):
    with one connection to share, a client still sending its body does not keep a GET out."""
    relay = await start_relay(upstream.url, max_connections=1)
    upstream.reset()
    before = upstream.connections
    reader, writer = await relay.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 10\r\n\r\nslow")
    await asyncio.sleep(0.2)
    assert upstream.connections == before  # nothing opened for it yet
    started = time.monotonic()
    response = await relay.get(b"/echo?normal", timeout=3)
    assert response.status == 200 and time.monotonic() - started < 1
    writer.write(b"-body")
    writer.write(b"!")
    answer = await read_response(reader)
    assert answer.json()["body"] == "slow-body!"  # type: ignore[index]
    assert [r.target for r in upstream.requests] == ["/echo?normal", "/echo"]
    writer.close()


async def test_a_body_larger_than_the_buffer_streams_once_the_buffer_is_full(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, request_buffer=1024)
    upstream.reset()
    reader, writer = await relay.connect()
    writer.write(b"POST /sink HTTP/1.1\r\nHost: p\r\nContent-Length: 4096\r\n\r\n" + b"a" * 2048)
    assert await wait_until(lambda: bool(upstream.requests))  # connected once 1 KiB came
    writer.write(b"b" * 2048)
    response = await read_response(reader)
    assert response.body.startswith(b"4096 61616161 62626262")
    writer.close()


async def test_a_request_waiting_too_long_for_a_connection_gets_503(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url, max_connections=1, pool_timeout=0.5)
    first = asyncio.ensure_future(relay.get(b"/slow?delay=3", timeout=10))
    assert await wait_until(lambda: bool(upstream.requests))
    started = time.monotonic()
    waiting = [asyncio.ensure_future(relay.get(b"/echo?%d" % i, timeout=5)) for i in range(3)]
    for response in await asyncio.gather(*waiting):
        assert response.status == 503
        assert error_of(response)["message"] == (
            f"no connection to the upstream http://127.0.0.1:{upstream.port} was free in time"
        )
    assert time.monotonic() - started < 2
    assert (await first).body == b"late"
    # The pool serves again once the connection is back.
    assert (await relay.get(b"/echo?after")).status == 200


async def test_an_idempotent_request_read_whole_goes_again_with_its_body(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    """A PUT whose body was read before connecting can be sent again on a new connection
    when the kept-alive one turns out closed (and not one byte of an answer came)."""
    relay = await start_relay(upstream.url)
    assert (await relay.get(b"/stale")).body == b"fresh"
    upstream.reset()
    response = await roundtrip(
        relay.port, b"PUT /echo?put HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nbody"
    )
    assert response.status == 200
    assert response.json()["body"] == "body"  # type: ignore[index]
    assert [r.target for r in upstream.requests].count("/echo?put") == 1


# -- what an upstream may send ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (b"/big-head?kib=100", "sent a response head larger than 65536 bytes"),
        (b"/big-head?kib=100&pieces=1", "sent a response head larger than 65536 bytes"),
        (b"/endless-value", "sent a response head larger than 65536 bytes"),
        (b"/many-headers?n=20000", "sent a response head larger than 65536 bytes"),
        (b"/many-headers?n=150", "sent more than 100 headers"),
        (b"/early-hints?pad=70000", "sent a response head larger than 65536 bytes"),
    ],
    ids=[
        "100 KiB in one write",
        "100 KiB in pieces",
        "endless value",
        "20,000",
        "150",
        "after 103",
    ],
)
async def test_an_upstream_head_over_the_limits_is_a_502(
    start_relay: StartRelay, upstream: ScriptedUpstream, path: bytes, message: str
) -> None:
    relay = await start_relay(upstream.url)
    response = await relay.get(path, timeout=10)
    assert response.status == 502
    assert error_of(response)["message"].endswith(message)
    await wait_until(lambda: upstream.open_connections() == 0)


async def test_an_upstream_head_within_the_limits_passes(
    start_relay: StartRelay, upstream: ScriptedUpstream
) -> None:
    relay = await start_relay(upstream.url)
    assert (await relay.get(b"/big-head?kib=60")).body == b"ok"
    assert (await relay.get(b"/many-headers?n=99")).body == b"ok"


@pytest.mark.parametrize("path", [b"/endless-trailers", b"/endless-extension"])
async def test_endless_chunk_framing_from_an_upstream_cuts_the_answer(
    start_relay: StartRelay, upstream: ScriptedUpstream, path: bytes
) -> None:
    """The head went out already: the client's connection is cut (the body is not whole)."""
    relay = await start_relay(upstream.url)
    reader, writer = await relay.connect()
    writer.write(b"GET %s HTTP/1.1\r\nHost: p\r\n\r\n" % path)
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await read_response(reader, timeout=10)
    writer.close()
    await wait_until(lambda: upstream.open_connections() == 0)


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize(
    "query",
    [b"te=gzip,%20chunked", b"te=chunked,%20chunked", b"te=chunked&te=chunked"],
    ids=["gzip, chunked", "chunked, chunked", "two headers"],
)
async def test_an_answer_with_a_coding_the_proxy_cannot_undo_is_a_502(
    start_relay: StartRelay, serve: Serve, upstream: ScriptedUpstream, path: str, query: bytes
) -> None:
    """Transfer-Encoding is hop-by-hop: the proxy undoes ``chunked`` and frames the body its own
    way. Any other coding would go to the client as if it were the body (found by the fuzz
    target, tests/reliability/test_fuzz.py)."""
    if path == "fast":
        port = (await start_relay(upstream.url)).port
    else:
        port = (await serve(HTTPProxyHandler(ProxyContext(url=upstream.url)))).port
    response = await roundtrip(port, b"GET /coded?%s HTTP/1.1\r\nHost: p\r\n\r\n" % query)
    assert response.status == 502
    assert error_of(response)["message"].endswith("sent a transfer coding other than chunked")
    plain = await roundtrip(port, b"GET /coded HTTP/1.1\r\nHost: p\r\n\r\n")
    assert (plain.status, plain.body) == (200, b"body")
