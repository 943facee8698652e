"""What a client may send ferryman's server, and how slowly (issue 20, items 2, 3 and 7).

Each limit and timeout of :class:`~ferryman.server.protocol.ServerLimits` is tried from a raw
socket, the way an attacker or a broken client would: the answer is the status the limit names
(or a closed connection once nothing can be answered), and the handler never sees the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.server.test_protocol import GET, Serve, at_eof, body_of, serve
from tests.servers.slow_upstream import read_response, wait_until

__all__ = ["serve"]  # (the fixture, shared with test_protocol)


async def refused(served_port: int, data: bytes) -> tuple[int, str]:
    """Send ``data`` on a new connection: the refusal's status and message."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(data)
    response = await read_response(reader, timeout=5)
    payload = body_of(response)
    assert payload["status"] == response.status
    assert await at_eof(reader)
    writer.close()
    return response.status, str(payload["message"])


# -- sizes -----------------------------------------------------------------------------------


async def test_an_endless_header_value_is_cut_at_the_head_limit(serve: Serve) -> None:
    """A value that arrives in pieces, one read each, is counted as it comes: 431 soon after
    the head's limit, and the server answers others meanwhile. (httptools joins the pieces
    with ``+=``: unbounded, that was quadratic CPU and memory.)"""
    served = await serve(head=16384)
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: ")
    sent = 0
    piece = b"a" * 1024
    while not reader.at_eof() and sent < 1024 * 1024:
        try:
            writer.write(piece)
            await writer.drain()
        except ConnectionError:
            break
        sent += len(piece)
        if sent % (8 * 1024) == 0:
            # Another client is served while the value grows.
            started = time.monotonic()
            other_reader, other_writer = await served.connect()
            other_writer.write(GET % b"/other")
            assert (await read_response(other_reader)).status == 200
            assert time.monotonic() - started < 1
            other_writer.close()
        await asyncio.sleep(0.002)  # (a read each)
        if reader._buffer:  # type: ignore[attr-defined]
            break
    response = await read_response(reader)
    assert response.status == 431
    assert sent <= 16384 + 256 * 1024  # the limit, plus at most a read beyond it
    assert [seen.exchange.target for seen in served.handler.seen] == [b"/other"] * len(
        served.handler.seen
    )
    writer.close()


async def test_one_header_longer_than_the_field_limit_gets_431(serve: Serve) -> None:
    served = await serve(header=100)
    status, message = await refused(
        served.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 100 + b"\r\n\r\n"
    )
    assert (status, message) == (431, "a request header is longer than 100 bytes")
    assert served.handler.seen == []


@pytest.mark.parametrize(("count", "status"), [(99, 200), (100, 431)])
async def test_the_header_count_is_limited(serve: Serve, count: int, status: int) -> None:
    """Host and ``count`` more: 100 fields pass, 101 get a 431 (20,000 were forwarded)."""
    served = await serve()
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    reader, writer = await served.connect()
    writer.write(b"GET /n HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    response = await read_response(reader)
    assert response.status == status
    if status == 431:
        assert body_of(response)["message"] == "the request has more than 100 headers"
    writer.close()


async def test_trailers_are_limited_and_never_become_the_next_requests_headers(
    serve: Serve,
) -> None:
    """Trailers after a chunked body are counted against the head's limits and dropped. They
    used to be appended to the next request's headers: a trailer ``Content-Length`` then
    changed the framing the next request was relayed with."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Injected: yes\r\nX-Other: 1\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert body_of(await read_response(reader))["body"] == "abc"
    second = body_of(await read_response(reader))
    assert second["target"] == "/next"
    assert second["headers"] == [["Host", "t"]]
    writer.close()
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(101))
    status, message = await refused(
        served.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n",
    )
    assert (status, message) == (400, "the request's trailers are too large")


async def test_an_endless_chunk_extension_is_cut(serve: Serve) -> None:
    served = await serve(head=8192)
    reader, writer = await served.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=")
    for _ in range(64):
        writer.write(b"x" * 1024)
        await writer.drain()
        await asyncio.sleep(0.002)
        if reader._buffer:  # type: ignore[attr-defined]
            break
    response = await read_response(reader)
    assert response.status == 400
    assert body_of(response)["message"] == "the request's chunk framing or trailers are too large"
    writer.close()


async def test_a_body_over_the_limit_gets_413_and_is_not_completed(serve: Serve) -> None:
    served = await serve(body=10)
    reader, writer = await served.connect()
    writer.write(
        b"POST /hang HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
    )
    response = await read_response(reader)
    assert response.status == 413
    assert body_of(response)["message"] == "the request body is larger than 10 bytes"
    [seen] = served.handler.seen
    assert seen.lost and not seen.ended  # the handler is told, and never gets the end
    writer.close()


# -- what a request may be -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "an HTTP/1.1 request needs one Host header"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "an HTTP/1.1 request needs one Host header (it sent several)",
        ),
        (
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "a request may have one Host header, it sent several",
        ),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "the Host header is not a valid host"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "the Host header is not a valid host"),
        (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "the Host header is not a valid host"),
        (
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            505,
            "HTTP/2.0 is not supported here (HTTP/1.1 is)",
        ),
        (b"GET /\r\n\r\n", 505, "HTTP/0.9 is not supported here (HTTP/1.1 is)"),
        (
            b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
            505,
            "this HTTP version is not supported here (HTTP/1.1 is)",
        ),
        (
            b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            505,
            "this HTTP version is not supported here (HTTP/1.1 is)",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
            "only the chunked transfer coding is supported",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n"
            b"Content-Length: 0\r\n\r\n",
            400,
            "malformed HTTP request: Content-Length can't be present with Transfer-Encoding",
        ),
    ],
    ids=[
        "1.1 without Host",
        "two Hosts",
        "two Hosts in 1.0",
        "Host with a space",
        "Host with a slash",
        "Host with a bad port",
        "HTTP/2.0",
        "HTTP/0.9",
        "HTTP/3.0",
        "HTTP/1.2",
        "gzip, chunked",
        "identity and a length",
    ],
)
async def test_requests_the_server_cannot_take_are_refused(
    serve: Serve, head: bytes, status: int, message: str
) -> None:
    served = await serve()
    assert await refused(served.port, head) == (status, message)
    assert served.handler.seen == []


@pytest.mark.parametrize(
    "host", [b"", b"example.org", b"example.org:8080", b"127.0.0.1:1", b"[::1]:4000", b"x_y.z"]
)
async def test_valid_hosts_pass(serve: Serve, host: bytes) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /h HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_http_1_0_needs_no_host(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()


@pytest.mark.parametrize("method", [b"FOO", b"PURGE", b"PROPFIND", b"X-CUSTOM_1"])
async def test_extension_methods_reach_the_handler(serve: Serve, method: bytes) -> None:
    """Any RFC 9110 token is a method: llhttp knows only the registered ones, so the others
    are parsed again under a name it knows and handed on under their own."""
    served = await serve()
    reader, writer = await served.connect()
    for i in range(2):  # and again on the same connection
        writer.write(b"%s /m%d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi" % (method, i))
        payload = body_of(await read_response(reader))
        assert (payload["method"], payload["target"], payload["body"]) == (
            method.decode(),
            f"/m{i}",
            "hi",
        )
    writer.close()


@pytest.mark.parametrize("method", [b"F(O)O", b"GET\x01", b"A" * 40])
async def test_methods_that_are_not_tokens_get_400(serve: Serve, method: bytes) -> None:
    served = await serve()
    status, _ = await refused(served.port, b"%s / HTTP/1.1\r\nHost: t\r\n\r\n" % method)
    assert status == 400
    assert served.handler.seen == []


async def test_a_pipelined_good_request_is_answered_before_the_bad_one_is_refused(
    serve: Serve,
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/later" + b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    good = await read_response(reader)
    assert good.status == 200 and body_of(good)["target"] == "/later"
    bad = await read_response(reader)
    assert bad.status == 400
    assert await at_eof(reader)
    writer.close()


# -- timeouts --------------------------------------------------------------------------------


async def test_a_head_that_trickles_in_gets_408(serve: Serve) -> None:
    """Slowloris: a byte now and then keeps no connection open past the head timeout."""
    served = await serve(head_timeout=1)
    reader, writer = await served.connect()
    started = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa":
        if reader._buffer:  # type: ignore[attr-defined]
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)
    response = await read_response(reader)
    assert response.status == 408
    assert body_of(response)["message"] == "the request head took longer than 1 s"
    assert 1 <= time.monotonic() - started < 4
    assert await at_eof(reader)
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(
    serve: Serve,
) -> None:
    served = await serve(head_timeout=1, keepalive=30)
    reader, writer = await served.connect()
    assert await at_eof(reader, 4)
    writer.close()


async def test_a_body_that_stops_coming_gets_408(serve: Serve) -> None:
    served = await serve(body_idle=1)
    reader, writer = await served.connect()
    writer.write(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial")
    response = await read_response(reader, timeout=5)
    assert response.status == 408
    assert body_of(response)["message"] == "no byte of the request body came for 1 s"
    assert await wait_until(lambda: served.handler.seen[0].lost)
    writer.close()


async def test_a_body_that_trickles_in_gets_408_by_the_minimum_rate(serve: Serve) -> None:
    """One byte every 0.3 s keeps the idle timer happy, not the rate: the body has body_idle
    seconds plus one for every body_min_rate bytes."""
    served = await serve(body_idle=1.5, body_min_rate=100)
    reader, writer = await served.connect()
    writer.write(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    while not reader._buffer and time.monotonic() - started < 8:  # type: ignore[attr-defined]
        writer.write(b"x")
        await asyncio.sleep(0.3)
    response = await read_response(reader)
    assert response.status == 408
    assert body_of(response)["message"] == "the request body came slower than 100 bytes/s"
    writer.close()


async def test_a_client_that_reads_nothing_of_its_answer_is_dropped(serve: Serve) -> None:
    served = await serve(send_timeout=1)
    _reader, writer = await served.connect()
    writer.write(GET % b"/big")
    await asyncio.sleep(0.2)
    assert served.state.connections
    # Nothing read: the server's socket buffer stays full, and after about a second it gives up.
    assert await wait_until(lambda: not served.state.connections, 5)
    writer.close()


async def test_exchanges_open_when_draining_starts_stop_keeping_alive(serve: Serve) -> None:
    """Their handlers (the relay, the bridge) frame the answer by ``keep_alive``: it must say
    ``Connection: close``, since the connection closes after it."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/hang")
    assert await wait_until(lambda: bool(served.handler.seen))
    exchange = served.handler.seen[0].exchange
    assert exchange.keep_alive
    served.state.start_closing()
    assert not exchange.keep_alive
    exchange.send_error(503, b"{}")
    response = await read_response(reader)
    assert response.header("connection") == "close"
    assert await at_eof(reader)
    writer.close()


@pytest.mark.parametrize("where", ["chunk extension", "header value"])
async def test_an_overlong_part_inside_one_read_is_cut_before_the_handler_gets_the_rest(
    serve: Serve, where: str
) -> None:
    """A 100 KB chunk extension (or header value) sent in one write arrives in one read: it is
    parsed in slices, so the request is refused before its body's end (which follows in the
    same read) reaches the handler."""
    served = await serve()
    long = b"x" * 100_000
    if where == "chunk extension":
        request = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=" + long + b"\r\nhello\r\n0\r\n\r\n"
        )
    else:
        request = b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Long: " + long + b"\r\n\r\n"
    reader, writer = await served.connect()
    writer.write(request)
    response = await read_response(reader)
    assert response.status == (400 if where == "chunk extension" else 431)
    assert all(not seen.ended and not seen.answered for seen in served.handler.seen)
    writer.close()


async def test_a_refusal_reaches_a_client_that_is_still_sending(serve: Serve) -> None:
    """The server stops reading a body it refuses, but closing with the client's bytes unread
    would reset the connection, and the reset can destroy the 413 before the client reads
    it: the server ends its side after the answer and drops what still comes (a lingering
    close), so the client gets its answer."""
    served = await serve(body=1000)
    for _ in range(5):
        reader, writer = await served.connect()
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4000000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(40):
                writer.write(b"x" * 100_000)
                await writer.drain()
        response = await read_response(reader)
        assert response.status == 413
        writer.close()


async def test_an_overlong_chunk_extension_split_across_reads_is_cut(serve: Serve) -> None:
    """The head and half of a 100 KB extension in one read, the rest and the body's end in
    the next: what follows the head's end in the first read counts too (up to a slice)."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="
        + b"x" * 50_000
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(b"x" * 50_000 + b"\r\nhello\r\n0\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 400
    assert all(not seen.ended and not seen.answered for seen in served.handler.seen)
    writer.close()
