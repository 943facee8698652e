"""HTTP/1.1 exchanges over the pool against the edge-case server and uvicorn."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trustme

from ferryman import (
    AsyncConnectionPool,
    Headers,
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    StreamConsumedError,
    WriteTimeout,
)
from ferryman.client.transport.http11 import ResponseHeadTooLarge
from tests.servers.edge import EdgeServer, pattern
from tests.servers.silent import SilentServer
from tests.servers.slow_upstream import ScriptedUpstream


async def test_get_returns_status_headers_body_and_version(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/echo?a=1&a=2"))
        body = json.loads(await response.aread())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert response.extensions["reason_phrase"] == b"OK"
    assert body["method"] == "GET"
    assert body["target"] == "/echo?a=1&a=2"
    assert ["Host", f"127.0.0.1:{edge.port}"] in body["headers"]


async def test_keep_alive_reuses_one_connection(edge: EdgeServer) -> None:
    before = edge.connections
    async with AsyncConnectionPool() as pool:
        for _ in range(5):
            response = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
            await response.aread()
        assert len(pool.connections) == 1
    assert edge.connections - before == 1


async def test_server_closing_idle_connection_is_replaced_without_failing(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        first = await pool.handle_async_request(Request("GET", edge.url + "/close-after"))
        assert await first.aread() == b"bye"
        await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
        second = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        assert second.status_code == 200
        await second.aread()


async def test_stale_connection_detected_only_on_write_is_retried(edge: EdgeServer) -> None:
    """No sleep: the FIN may not have been seen yet when the connection is taken again."""
    async with AsyncConnectionPool() as pool:
        for _ in range(20):
            first = await pool.handle_async_request(Request("GET", edge.url + "/close-after"))
            await first.aread()
            second = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
            assert second.status_code == 200
            await second.aread()


async def test_a_streamed_body_goes_on_another_connection_when_the_idle_one_is_closing(
    edge: EdgeServer,
) -> None:
    # A socket can be closing before asyncio reports it lost: the request's head cannot be
    # written, nothing of the body was taken, so the request goes again on a new connection.
    async def parts() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    async with AsyncConnectionPool() as pool:
        first = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await first.aread()
        (idle,) = pool.connections
        idle._transport.close()  # type: ignore[union-attr]  # connection_lost comes later
        response = await pool.handle_async_request(
            Request("POST", edge.url + "/echo", content=parts())
        )
        body = json.loads(await response.aread())
    assert body["body"] == "streamed body"


async def test_post_bytes_sets_content_length(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", edge.url + "/echo", content=b"hello")
        )
        body = json.loads(await response.aread())
    assert body["body"] == "hello"
    assert ["Content-Length", "5"] in body["headers"]


async def test_post_sync_iterable_is_sent_chunked(edge: EdgeServer) -> None:
    def parts():
        yield b"ab"
        yield b""
        yield b"cd"

    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", edge.url + "/echo", content=parts())
        )
        body = json.loads(await response.aread())
    assert body["body"] == "abcd"
    assert ["Transfer-Encoding", "chunked"] in body["headers"]


async def test_post_async_iterable_with_content_length(edge: EdgeServer) -> None:
    async def parts():
        for piece in (b"x" * 10, b"y" * 5):
            await asyncio.sleep(0)
            yield piece

    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("PUT", edge.url + "/echo", headers={"Content-Length": "15"}, content=parts())
        )
        body = json.loads(await response.aread())
    assert body["body"] == "x" * 10 + "y" * 5
    assert not any(name.lower() == "transfer-encoding" for name, _ in body["headers"])


async def test_large_streamed_upload_is_not_buffered(edge: EdgeServer) -> None:
    chunk = b"z" * 65536

    async def parts():
        for _ in range(256):  # 16 MiB
            yield chunk

    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", edge.url + "/sink", content=parts())
        )
        assert await response.aread() == str(256 * 65536).encode()


async def test_chunked_response_body(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/chunked?n=50"))
        body = await response.aread()
    assert body == b"".join(f"chunk{i};".encode() for i in range(50))


@pytest.mark.parametrize(
    "size", [0, 1, 1000, 32 * 1024 - 1, 32 * 1024 + 1, 3 * 1024 * 1024 + 7, 9 * 1024 * 1024 + 3]
)
async def test_content_length_bodies_of_every_size(edge: EdgeServer, size: int) -> None:
    async with AsyncConnectionPool() as pool:
        for _ in range(2):  # the second exchange checks the connection's state after the first
            request = Request("GET", f"{edge.url}/big?size={size}")
            response = await pool.handle_async_request(request)
            assert await response.aread() == pattern(size)
        assert len(pool.connections) == 1


async def test_streamed_large_body_arrives_in_chunks(edge: EdgeServer) -> None:
    size = 8 * 1024 * 1024
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", f"{edge.url}/big?size={size}"))
        received = bytearray()
        biggest = 0
        async for chunk in response.aiter_bytes():
            biggest = max(biggest, len(chunk))
            received += chunk
        assert bytes(received) == pattern(size)
        assert biggest <= 512 * 1024  # never the whole body at once


async def test_large_bodies_alternate_with_small_ones_and_streams_on_one_connection(
    edge: EdgeServer,
) -> None:
    # Bodies up to 8 MiB are received straight into a buffer the connection keeps: it must
    # never leak one response's bytes into the next, whichever way each is read.
    sizes = [1024 * 1024, 10, 5 * 1024 * 1024 + 1, 33 * 1024, 0, 2 * 1024 * 1024, 7]
    async with AsyncConnectionPool() as pool:
        for index, size in enumerate(sizes):
            response = await pool.handle_async_request(
                Request("GET", f"{edge.url}/big?size={size}")
            )
            if index % 2:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                assert bytes(body) == pattern(size)
            else:
                assert await response.aread() == pattern(size)
        assert len(pool.connections) == 1


async def test_network_stream_taken_in_the_middle_of_a_large_body(edge: EdgeServer) -> None:
    size = 2 * 1024 * 1024
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", f"{edge.url}/big?size={size}"))
        await asyncio.sleep(0.05)  # part of the body has arrived in the body's buffer
        stream = response.extensions["network_stream"]
        received = bytearray()
        while len(received) < size:
            chunk = await stream.read(65536, timeout=5)
            assert chunk, f"EOF after {len(received)} bytes"
            received += chunk
        assert bytes(received) == pattern(size)
        await stream.aclose()


async def test_a_slow_streaming_reader_stops_the_socket_being_read(edge: EdgeServer) -> None:
    # Flow control has no other visible effect on a body that fits the connection's buffer
    # than on the server's sends, so this looks at what the connection has received.
    size = 6 * 1024 * 1024
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", f"{edge.url}/big?size={size}"))
        chunks = response.aiter_bytes()
        received = bytearray(await chunks.__anext__())
        (conn,) = pool.connections
        before = conn._body_received
        await asyncio.sleep(0.3)  # the reader dawdles; the server has sent everything
        assert conn._body_received - before <= 512 * 1024  # the high water mark and a read
        async for chunk in chunks:
            received += chunk
        assert bytes(received) == pattern(size)


async def test_body_read_twice_raises(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        async for _ in response.stream:  # type: ignore[union-attr]
            pass
        with pytest.raises(StreamConsumedError):
            async for _ in response.stream:  # type: ignore[union-attr]
                pass
        await response.aclose()


async def test_head_response_has_no_body_and_connection_is_reused(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("HEAD", f"{edge.url}/big?size=5000"))
        assert response.headers["content-length"] == "5000"
        assert await response.aread() == b""
        again = await pool.handle_async_request(Request("GET", edge.url + "/big?size=10"))
        assert await again.aread() == pattern(10)
        assert len(pool.connections) == 1


@pytest.mark.parametrize("code", [204, 304])
async def test_bodiless_statuses(edge: EdgeServer, code: int) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", f"{edge.url}/status?code={code}"))
        assert response.status_code == code
        assert response.extensions["reason_phrase"] == b"Custom Reason"
        assert await response.aread() == b""
        again = await pool.handle_async_request(Request("GET", edge.url + "/status?code=200"))
        assert await again.aread() == b"body"


async def test_informational_responses_are_skipped(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/early-hints"))
        assert response.status_code == 200
        assert await response.aread() == b"final"


async def test_expect_100_continue_sends_body_after_the_100(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request(
                "POST",
                edge.url + "/continue",
                headers={"Expect": "100-continue"},
                content=b"payload",
            )
        )
        assert await response.aread() == b"got 7"


async def test_expect_100_continue_final_answer_means_body_is_not_sent(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request(
                "POST",
                edge.url + "/continue?reject=1",
                headers={"Expect": "100-continue"},
                content=b"payload",
            )
        )
        assert response.status_code == 417
        assert await response.aread() == b"no body please"


async def test_body_until_connection_close(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/until-close"))
        assert response.extensions["http_version"] == b"HTTP/1.0"
        assert await response.aread() == b"all of it until EOF"
        assert pool.connections == []


async def test_truncated_body_raises_remote_protocol_error(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(Request("GET", edge.url + "/truncated"))
        with pytest.raises(RemoteProtocolError, match="before the complete body"):
            await response.aread()
        assert pool.connections == []


async def test_bad_status_line_raises_remote_protocol_error(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(RemoteProtocolError, match="malformed HTTP"):
            await pool.handle_async_request(Request("GET", edge.url + "/bad-status"))
        assert pool.connections == []


@pytest.mark.parametrize("size", [2, 200_000], ids=["parsed body", "counted body"])
async def test_bytes_past_the_announced_length_are_not_the_body(
    edge: EdgeServer, size: int
) -> None:
    """More than Content-Length, shaped like another answer: the body is what was announced,
    and the connection, which cannot be trusted, is not used again."""
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("GET", edge.url + f"/overlong?size={size}")
        )
        assert await response.aread() == b"o" * size
        after = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        assert after.status_code == 200
        assert await after.aread() != b"smuggled"
        assert len(pool.connections) == 1


async def test_read_timeout_on_slow_body(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        request = Request(
            "GET", edge.url + "/slow-body?delay=1", extensions={"timeout": {"read": 0.2}}
        )
        response = await pool.handle_async_request(request)
        with pytest.raises(ReadTimeout):
            await response.aread()


async def test_read_timeout_on_slow_head(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        request = Request(
            "GET", edge.url + "/slow-head?delay=1", extensions={"timeout": {"read": 0.2}}
        )
        with pytest.raises(ReadTimeout):
            await pool.handle_async_request(request)


def _timed(url: str, read: float | None) -> Request:
    return Request("GET", url, extensions={"timeout": {"read": read}})


async def test_a_short_read_timeout_after_a_long_one_on_the_same_connection(
    edge: EdgeServer,
) -> None:
    # The connection keeps one read timer; a later, shorter timeout must not wait for it.
    async with AsyncConnectionPool() as pool:
        first = await pool.handle_async_request(_timed(edge.url + "/echo", 30.0))
        await first.aread()
        started = time.monotonic()
        with pytest.raises(ReadTimeout):
            await pool.handle_async_request(_timed(edge.url + "/slow-head?delay=5", 0.2))
        assert time.monotonic() - started < 2.0


async def test_an_earlier_requests_read_timer_does_not_cut_a_later_wait_short(
    edge: EdgeServer,
) -> None:
    async with AsyncConnectionPool() as pool:
        first = await pool.handle_async_request(_timed(edge.url + "/echo", 1.0))
        await first.aread()  # its timer stays set for t=1.0
        await asyncio.sleep(0.5)
        # Waits from t=0.5 to t=1.3: past the first timer, within its own 1 s.
        second = await pool.handle_async_request(_timed(edge.url + "/slow-head?delay=0.8", 1.0))
        assert second.status_code == 200
        await second.aread()
        # No timeout at all: the timer left by the request above must not fire on it.
        third = await pool.handle_async_request(_timed(edge.url + "/slow-head?delay=1.2", None))
        assert third.status_code == 200
        await third.aread()
        assert len(pool.connections) == 1


async def test_write_timeout_when_the_server_stops_reading(edge: EdgeServer) -> None:
    chunk = b"w" * 65536

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(4096):  # 256 MiB at most: far more than the socket buffers hold
            yield chunk

    streams = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            streams.append(info["return_value"])

    async with AsyncConnectionPool() as pool:
        request = Request(
            "POST",
            edge.url + "/no-read?delay=3",
            content=endless(),
            extensions={"timeout": {"write": 0.2, "read": 5}, "trace": trace},
        )
        with pytest.raises(WriteTimeout, match="did not accept"):
            await pool.handle_async_request(request)
        assert pool.connections == []
        # The unsent upload must not keep the socket open while the pool lives on.
        sock = streams[0].get_extra_info("socket")
        await asyncio.sleep(0.05)
        assert sock.fileno() == -1


async def test_header_injection_is_refused_before_sending(edge: EdgeServer) -> None:
    with pytest.raises(LocalProtocolError):
        Request("GET", edge.url, headers={"X-Bad": "a\r\nInjected: yes"})


async def test_invalid_method_is_refused(edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(LocalProtocolError, match="method"):
            await pool.handle_async_request(Request("GE T", edge.url + "/echo"))


async def test_uvicorn_serves_get_post_and_streaming(uvicorn_server) -> None:  # type: ignore[no-untyped-def]
    async with AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", uvicorn_server.url + "/path?q=1", content=b"data")
        )
        body = json.loads(await response.aread())
        assert body["method"] == "POST"
        assert body["query"] == "q=1"
        assert body["body"] == "data"
        stream = await pool.handle_async_request(Request("GET", uvicorn_server.url + "/stream"))
        assert await stream.aread() == b"".join(b"part%d\n" % i for i in range(5))
        assert len(pool.connections) == 1


async def test_a_callers_headers_object_is_not_changed(edge: EdgeServer) -> None:
    shared = Headers({"X-Api-Key": "k"})
    async with AsyncConnectionPool() as pool:
        for path in ("/echo", "/echo?again"):
            response = await pool.handle_async_request(
                Request("POST", edge.url + path, headers=shared, content=b"x")
            )
            await response.aread()
    assert shared.raw == [(b"X-Api-Key", b"k")]


# -- response limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "refused"),
    [
        ((512, None), "the server sent a response head larger than 512 bytes"),
        ((None, 10), "the server sent more than 10 headers"),
        ((65536, 100), None),
        (None, None),
    ],
)
async def test_response_limits_refuse_a_head_past_them(
    upstream: ScriptedUpstream, limits: tuple[int | None, int | None] | None, refused: str | None
) -> None:
    """The ``response_limits`` extension (a proxy's, issue 20): ``/api`` answers with 20
    header fields in about 900 bytes."""
    extensions = {} if limits is None else {"response_limits": limits}
    async with AsyncConnectionPool() as pool:
        request = Request("GET", upstream.url + "/api", extensions=extensions)
        if refused is None:
            response = await pool.handle_async_request(request)
            assert await response.aread() == b'{"id": 4711}'
        else:
            with pytest.raises(ResponseHeadTooLarge) as raised:
                await pool.handle_async_request(request)
            assert str(raised.value) == refused
            assert pool.connections == []  # (closed, not kept for the next request)


async def test_response_limits_stop_an_endless_head(upstream: ScriptedUpstream) -> None:
    async with AsyncConnectionPool() as pool:
        request = Request(
            "GET", upstream.url + "/endless-head", extensions={"response_limits": (65536, None)}
        )
        with pytest.raises(ResponseHeadTooLarge, match="larger than 65536 bytes"):
            await pool.handle_async_request(request)


# -- response heads: the pool's limits (issue 21) ----------------------------------------------


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        # One header line after another, a KiB each (3 GiB in 3.3 s before the limit).
        ("/endless-head?kib=4000000", "larger than 65536 bytes"),
        # One header value that never ends, a KiB a write.
        ("/endless-value?kib=4000000", "larger than 65536 bytes"),
        # 200k short headers in one head (all were accepted before the limit).
        ("/many-headers?n=200000", "more than 100 headers"),
        # Interim heads without end, each with a field: they count as the final head does.
        ("/many-interim?n=10000000", "more than 100 headers"),
    ],
)
async def test_the_pool_refuses_a_response_head_past_its_default_limits(
    upstream: ScriptedUpstream, path: str, refused: str
) -> None:
    """Within a read or two of the limit, as a RemoteProtocolError naming it; the connection
    is closed, not reused."""
    before = upstream.connections
    timeouts = {"timeout": {"read": 30, "write": 30, "connect": 30, "pool": 30}}
    async with AsyncConnectionPool() as pool:
        with pytest.raises(RemoteProtocolError, match=refused) as raised:
            await pool.handle_async_request(
                Request("GET", upstream.url + path, extensions=timeouts)
            )
        assert isinstance(raised.value, ResponseHeadTooLarge)
        assert pool.connections == []
        response = await pool.handle_async_request(Request("GET", upstream.url + "/api"))
        assert await response.aread() == b'{"id": 4711}'
    assert upstream.connections - before == 2  # the next request came on a new connection


@pytest.mark.parametrize("piece", [0, 1000])
async def test_a_head_at_the_limits_is_taken_and_one_past_them_is_not(
    upstream: ScriptedUpstream, piece: int
) -> None:
    """64 KiB and 100 fields exactly, whole or in reads of 1000 bytes: taken. A byte or a
    field more: refused, the message naming the option to raise."""
    async with AsyncConnectionPool() as pool:
        for query, refused in [
            ("size=65536&fields=100", None),
            ("size=65537&fields=100", "larger than 65536 bytes (max_response_head_size)"),
            ("size=65536&fields=101", "more than 100 headers (max_response_headers)"),
        ]:
            request = Request("GET", f"{upstream.url}/sized-head?{query}&piece={piece}")
            if refused is None:
                response = await pool.handle_async_request(request)
                assert await response.aread() == b"ok"
                assert len(response.headers.raw) == 100
            else:
                with pytest.raises(RemoteProtocolError, match=re.escape(refused)):
                    await pool.handle_async_request(request)


async def test_the_pools_response_limits_are_its_options(upstream: ScriptedUpstream) -> None:
    async with AsyncConnectionPool(max_response_head_size=None, max_response_headers=None) as pool:
        response = await pool.handle_async_request(
            Request("GET", upstream.url + "/many-headers?n=20000")
        )
        assert await response.aread() == b"ok"
        assert len(response.headers.raw) == 20001
    async with AsyncConnectionPool(max_response_head_size=512, max_response_headers=5) as pool:
        with pytest.raises(RemoteProtocolError, match="more than 5 headers"):
            await pool.handle_async_request(
                Request("GET", upstream.url + "/sized-head?size=100&fields=6")
            )
        with pytest.raises(RemoteProtocolError, match="larger than 512 bytes"):
            await pool.handle_async_request(Request("GET", upstream.url + "/sized-head?size=513"))
        # The request's extension (a proxy's limits) wins over the pool's.
        response = await pool.handle_async_request(
            Request(
                "GET",
                upstream.url + "/sized-head?size=1000&fields=10",
                extensions={"response_limits": (1000, 10)},
            )
        )
        assert await response.aread() == b"ok"
    with pytest.raises(ValueError, match="max_response_headers"):
        AsyncConnectionPool(max_response_headers=0)


# -- the write timeout of in-memory bodies (issue 21) ------------------------------------------


@pytest.fixture(params=["http", "https"])
def silent(request: pytest.FixtureRequest, server_cert: trustme.LeafCert) -> Iterator[SilentServer]:
    context = None
    if request.param == "https":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(context)
    server = SilentServer(ssl_context=context).start()
    yield server
    server.stop()


async def test_the_write_timeout_bounds_an_in_memory_body_the_server_does_not_read(
    silent: SilentServer, ca_bundle: str
) -> None:
    """50 MB of bytes to a server that reads none: WriteTimeout after the write timeout (1 s),
    not ReadTimeout after the read timeout (10 s). Over TLS too, whose transport buffers on
    its own."""
    body = b"u" * (50 * 1024 * 1024)
    async with AsyncConnectionPool(verify=ca_bundle) as pool:
        request = Request(
            "POST",
            silent.url + "/upload",
            content=body,
            extensions={"timeout": {"write": 1, "read": 10}},
        )
        started = time.monotonic()
        with pytest.raises(WriteTimeout, match="did not accept data for 1 s"):
            await pool.handle_async_request(request)
        assert time.monotonic() - started < 5
        assert pool.connections == []


async def test_an_early_answer_stands_while_an_in_memory_body_waits_to_be_sent() -> None:
    """A server that answers 413 without reading the upload: the answer, not a WriteTimeout;
    the rest of the body is not sent, and the connection is not kept."""
    answer = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo much"
    server = SilentServer(answer).start()
    try:
        async with AsyncConnectionPool() as pool:
            request = Request(
                "PUT",
                server.url + "/upload",
                content=b"u" * (50 * 1024 * 1024),
                extensions={"timeout": {"write": 30, "read": 30}},
            )
            response = await pool.handle_async_request(request)
            assert response.status_code == 413
            assert await response.aread() == b"too much"
            assert pool.connections == []
    finally:
        server.stop()


# -- HTTP/0.9 answers (opt-in) and a request's "Connection: close" -----------------------------


async def test_an_http09_answer_is_malformed_http_unless_the_pool_accepts_it(
    edge: EdgeServer,
) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(RemoteProtocolError, match=r"malformed HTTP.*http09=True"):
            await pool.handle_async_request(Request("GET", edge.url + "/http09"))


@pytest.mark.parametrize("split", [0, 1, 3])
async def test_an_accepted_http09_answer_is_a_200_whose_body_ends_with_the_connection(
    edge: EdgeServer, split: int
) -> None:
    # split=3 sends "HTT" alone first: a start that could still have been a status line.
    body = "HTTP-less: no head, only this body"
    async with AsyncConnectionPool(http09=True) as pool:
        response = await pool.handle_async_request(
            Request("GET", f"{edge.url}/http09?split={split}&body={body}")
        )
        assert await response.aread() == body.encode()
        assert response.status_code == 200
        assert response.extensions["http_version"] == b"HTTP/0.9"
        assert list(response.headers.items()) == []
        assert pool.connections == []  # no keep-alive without a head


async def test_an_http09_answer_can_be_streamed(edge: EdgeServer) -> None:
    async with AsyncConnectionPool(http09=True) as pool:
        response = await pool.handle_async_request(
            Request("GET", f"{edge.url}/http09?split=2&body=streamed-0.9")
        )
        chunks = [chunk async for chunk in response.stream]  # type: ignore[union-attr]
    assert b"".join(chunks) == b"streamed-0.9"


async def test_http09_is_never_taken_on_a_reused_connection(edge: EdgeServer) -> None:
    # A headless answer on a kept-alive connection is more likely a stream that lost its
    # place than a server that switched to 0.9: it stays an error.
    async with AsyncConnectionPool(http09=True) as pool:
        first = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await first.aread()
        with pytest.raises(RemoteProtocolError, match="malformed HTTP"):
            await pool.handle_async_request(Request("GET", edge.url + "/http09"))


async def test_a_malformed_status_line_stays_an_error_with_http09_on(edge: EdgeServer) -> None:
    async with AsyncConnectionPool(http09=True) as pool:
        with pytest.raises(RemoteProtocolError, match="malformed HTTP"):
            await pool.handle_async_request(Request("GET", edge.url + "/bad-status"))


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close"])
async def test_a_request_saying_connection_close_is_its_connections_last(
    edge: EdgeServer, value: str
) -> None:
    # The server keeps the connection open anyway (ignore-close=1): the client must not send
    # another request on it (RFC 9112 9.6).
    before = edge.connections
    async with AsyncConnectionPool() as pool:
        last = await pool.handle_async_request(
            Request("GET", edge.url + "/echo?ignore-close=1", headers={"Connection": value})
        )
        await last.aread()
        assert pool.connections == []
        again = await pool.handle_async_request(Request("GET", edge.url + "/echo"))
        await again.aread()
    assert edge.connections - before == 2


# -- whether an answer began when the exchange failed (a proxy's retries read it) --------------


@pytest.fixture
def cued() -> Iterator[Any]:
    from tests.servers.cued_upstream import CuedUpstream

    server = CuedUpstream().start()
    yield server
    server.stop()


async def test_a_failure_says_whether_any_byte_of_the_answer_came(cued: Any) -> None:
    from ferryman import AsyncClient, ReadTimeout, RemoteProtocolError

    async with AsyncClient(timeout=5) as client:
        # (POSTs: the pool sends no non-idempotent request twice on its own)
        cued.cue = "hangup"  # closed without a word
        with pytest.raises(RemoteProtocolError) as nothing:
            await client.post(cued.url + "/x", content=b"body")
        assert nothing.value.answer_began is False
        cued.cue = "half-head"  # part of a head, then silence
        with pytest.raises(ReadTimeout) as stalled:
            await client.post(cued.url + "/x", content=b"body", timeout=0.3)
        assert stalled.value.answer_began is True
        cued.cue = "cut"  # the head and half the body, then closed
        with pytest.raises(RemoteProtocolError) as cut:
            await client.post(cued.url + "/x", content=b"body")
        assert cut.value.answer_began is True
