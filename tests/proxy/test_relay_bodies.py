"""Bodies read by async listeners and middleware on the fast relay (``proxy.relay_bodies``).

Each scenario runs on a ProxyServer whose relay serves it: the kernel (the relay's fallback)
sees none of the requests (``count_general``). Where the general path could differ, the same
scenario runs there too (a ``core.request`` listener sends every request the general way) and
what the upstream and the client received are compared.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ferryman.exceptions import ResponseNotRead
from ferryman.http import Response
from ferryman.proxy import ProxyContext
from ferryman.proxy.application import build_kernel
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.relay_bodies import ListenerBodyTooLarge
from ferryman.proxy.server import ProxyServer
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED
from ferryman.server.events import EVENT_CORE_REQUEST
from ferryman.system import SystemBuilder, load_config
from tests.proxy import test_parity
from tests.proxy.test_parity import RecordingUpstream, Serve, get
from tests.proxy.test_relay_events import CountingFallback, count_general, send, upstream_bytes
from tests.proxy.test_relay_middleware import body_of, handler_of
from tests.servers.slow_upstream import pattern

upstream = test_parity.upstream
serve = test_parity.serve

PATHS = ("relay", "general")
MIB = 1024 * 1024


def post(
    body: bytes, target: bytes = b"/echo", *, chunks: int = 0, method: bytes = b"POST"
) -> bytes:
    """A request with ``body``: with a Content-Length, or chunked in ``chunks`` pieces."""
    head = b"%s %s HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n" % (method, target)
    if not chunks:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    size = -(-len(body) // chunks)
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces)
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def on(server: ProxyServer, path: str) -> CountingFallback:
    """Send the server's next requests down ``path``; the fallback's counter."""
    general = count_general(server)
    if path == "general":
        server.system.dispatcher.add_listener(EVENT_CORE_REQUEST, lambda event: None)
    return general


def served_by(general: CountingFallback, path: str, requests: int = 1) -> bool:
    return general.requests == (requests if path == "general" else 0)


def dechunk(data: bytes) -> bytes:
    """A chunked body's bytes."""
    body = b""
    while True:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


# -- the request's body ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("chunks", [0, 3])
async def test_a_listener_reads_the_request_body_and_it_goes_upstream_as_sent(
    serve: Serve, upstream: RecordingUpstream, path: str, chunks: int
) -> None:
    server = await serve({"api": [upstream.url]})
    body = b'{"order": 4711, "items": ["a", "b"]}'
    request = post(body, chunks=chunks)
    (plain,), _ = await upstream_bytes(server, upstream, request)  # (the plain relay's)
    read: list[Any] = []

    async def reader(event: ProxyFilterEvent) -> None:
        await asyncio.sleep(0)
        read.append(await event.request.aread())
        read.append(event.request.content)
        read.append(json.loads(event.request.content)["order"])

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, reader)
    general = on(server, path)
    (received,), answer = await upstream_bytes(server, upstream, request)
    assert read == [body, body, 4711]
    assert json.loads(body_of(answer))["body"] == body.decode()
    plain_head, plain_body = plain.split(b"\r\n\r\n", 1)
    head, sent = received.split(b"\r\n\r\n", 1)
    if chunks:
        # Chunked as it came (the pieces may be cut otherwise: the bytes they carry are the same).
        assert b"\r\nTransfer-Encoding: chunked" in head and dechunk(sent) == body
    else:
        assert head == plain_head and sent == plain_body == body  # byte for byte
    assert served_by(general, path)


@pytest.mark.parametrize("path", PATHS)
async def test_an_async_middleware_reads_the_request_body_and_it_still_goes_upstream(
    serve: Serve, upstream: RecordingUpstream, path: str
) -> None:
    server = await serve({"api": [upstream.url]})
    read: list[bytes] = []

    async def audit(ctx: ProxyContext) -> Any:
        assert ctx.request is not None
        read.append(await ctx.request.aread())
        yield

    handler_of(server).client_edge(audit)
    general = on(server, path)
    answer = await send(server, post(b"x" * 100_000))  # (more than the request buffer)
    assert read == [b"x" * 100_000]
    assert json.loads(body_of(answer))["body"] == "x" * 100_000
    assert served_by(general, path)


async def test_a_listener_streams_the_request_body_and_a_later_one_reads_it_whole(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    seen: list[int] = []

    async def first(event: ProxyFilterEvent) -> None:
        async for chunk in event.request.stream:
            seen.append(len(chunk))
            break  # (a partial read: the rest is read before the request goes)

    async def second(event: ProxyFilterEvent) -> None:
        seen.append(len(await event.request.aread()))

    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, first, priority=1)
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, second)
    general = count_general(server)
    body = b"0123456789abcdef" * 20_000
    answer = await send(server, post(body, chunks=5))
    assert seen[0] > 0 and seen[-1] == len(body)
    assert json.loads(body_of(answer))["body"] == body.decode()
    assert general.requests == 0


async def test_a_listener_may_read_then_replace_the_request_body(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    async def redact(event: ProxyFilterEvent) -> None:
        body = json.loads(await event.request.aread())
        body["card"] = "****"
        event.request.stream = Response(200, json=body).stream

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, redact)
    general = count_general(server)
    (received,), answer = await upstream_bytes(server, upstream, post(b'{"card": "4111"}'))
    assert received.endswith(b'\r\nContent-Length: 15\r\n\r\n{"card":"****"}')
    assert json.loads(body_of(answer))["body"] == '{"card":"****"}'
    assert general.requests == 0


async def test_a_request_body_read_by_a_listener_is_sent_again_on_a_stale_connection(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    async def reader(event: ProxyFilterEvent) -> None:
        await event.request.aread()

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, reader)
    general = count_general(server)
    assert body_of(await send(server, get(b"/stale"))) == b"fresh"  # (kept, then dropped)
    upstream.reset()
    answer = await send(server, post(b"idempotent", method=b"PUT"))
    assert json.loads(body_of(answer))["body"] == "idempotent"  # (sent again, body and all)
    assert len(upstream.received) == 2 and general.requests == 0


@pytest.mark.parametrize("chunks", [0, 4])
@pytest.mark.parametrize("catch", [False, True])
async def test_a_request_body_past_the_listener_limit_is_a_413(
    serve: Serve, upstream: RecordingUpstream, chunks: int, catch: bool
) -> None:
    server = await serve({"api": [upstream.url, "limits.listener_body=1000"]})
    errors: list[str] = []

    async def reader(event: ProxyFilterEvent) -> None:
        try:
            await event.request.aread()
        except ListenerBodyTooLarge as exc:
            errors.append(str(exc))
            if not catch:
                raise

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, reader)
    general = count_general(server)
    upstream.reset()
    answer = await send(server, post(b"y" * 5000, chunks=chunks))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nConnection: close\r\n" in answer  # (the rest of the body is not read)
    assert json.loads(body_of(answer)) == {
        "status": 413,
        "message": "the request body is larger than 1000 bytes",
    }
    (error,) = errors
    assert "1000 bytes" in error and "limits.listener_body" in error and "'api'" in error
    assert upstream.received == [] and general.requests == 0
    # A body within the limit still goes.
    answer = await send(server, post(b"z" * 1000, chunks=chunks))
    assert json.loads(body_of(answer))["body"] == "z" * 1000


async def test_the_endpoint_body_limit_still_applies_while_a_listener_reads(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url, "limits.body=2000"]})

    async def reader(event: ProxyFilterEvent) -> None:
        await event.request.aread()

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, reader)
    general = count_general(server)
    upstream.reset()
    answer = await send(server, post(b"w" * 5000, chunks=5))  # (no length: found while read)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"larger than 2000 bytes" in answer
    assert upstream.received == [] and general.requests == 0


@pytest.fixture
async def proxy_alone(upstream: RecordingUpstream) -> AsyncIterator[ProxyServer]:
    """A ProxyServer with the proxy application alone: no application records bodies (the
    storage's recording would count in what the memory tests measure)."""
    overrides = [
        "applications=[proxy]",
        "proxy.port=0",
        "proxy.endpoints.0.name=api",
        "proxy.endpoints.0.port=0",
        f"proxy.endpoints.0.url={upstream.url}",
    ]
    system = await SystemBuilder(load_config([], overrides=overrides)).build(build_kernel)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    yield server
    await server.shutdown(1)
    await server.system.dispose()


async def test_a_huge_request_body_past_the_limit_is_never_held(
    proxy_alone: ProxyServer,
) -> None:
    server = proxy_alone  # (the default limit: 1 MiB)

    async def reader(event: ProxyFilterEvent) -> None:
        await event.request.aread()

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, reader)
    general = count_general(server)
    proxy_code = [tracemalloc.Filter(True, "*/ferryman/*"), tracemalloc.Filter(True, "*asyncio*")]
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(server.addresses["api"])
    sock.setblocking(False)
    piece = b"%x\r\n%b\r\n" % (65536, b"q" * 65536)
    held: list[int] = []
    sent = 0
    tracemalloc.start()
    try:
        # (sent from one bytes object, straight to the socket: the sender holds no copies)
        await loop.sock_sendall(
            sock, b"POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for count in range(16 * 16):  # 16 MiB, as long as the proxy reads it
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, piece), 0.5)
            except (TimeoutError, ConnectionError):
                break  # (it stopped reading: the limit was passed)
            sent += len(piece)
            if count % 4 == 0:
                snapshot = tracemalloc.take_snapshot().filter_traces(proxy_code)
                held.append(sum(stat.size for stat in snapshot.statistics("filename")))
        answer = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
    finally:
        tracemalloc.stop()
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert MIB < sent < 8 * MIB  # (it read past the limit, then no more)
    assert held and max(held) < 3 * MIB  # the limit and a few reads, never the body
    assert general.requests == 0


def test_a_synchronous_listener_gets_the_general_paths_error_for_an_unread_body() -> None:
    """The relay's error and the general path's, compared as raised (and below, as served)."""
    from ferryman.http.request import Request
    from ferryman.proxy.relay_events import RELAYED_BODY

    general = Request("POST", "http://p/", content=iter([b"streamed"]))
    relayed = Request("POST", "http://p/")
    relayed.stream = RELAYED_BODY
    errors = []
    for request in (general, relayed):
        with pytest.raises(ResponseNotRead) as caught:
            _ = request.content
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("path", PATHS)
async def test_synchronous_listeners_see_unread_bodies_alike_on_both_paths(
    serve: Serve, upstream: RecordingUpstream, path: str
) -> None:
    server = await serve({"api": [upstream.url]})
    errors: list[str] = []

    def look(event: ProxyFilterEvent) -> None:
        holder = event.request if event.response is None else event.response
        try:
            _ = holder.content
        except ResponseNotRead as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, look)
    dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, look)
    general = on(server, path)
    answer = await send(server, post(b"abc", target=b"/big?size=1000"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert errors == [
        "ResponseNotRead: the request body is a stream; it has no fixed content",
        "ResponseNotRead: The response body has not been read; call read() first.",
    ]
    assert served_by(general, path)


# -- the answer's body -------------------------------------------------------------------------


def response_reader(read: list[int]) -> Callable[[ProxyFilterEvent], Any]:
    async def reader(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        read.append(len(await event.response.aread()))
        read.append(len(event.response.content))

    return reader


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("chunked", [0, 1])
async def test_a_response_listener_reads_the_body_and_the_answer_goes_out_as_it_came(
    serve: Serve, upstream: RecordingUpstream, path: str, chunked: int
) -> None:
    server = await serve({"api": [upstream.url]})
    request = get(b"/big?size=300000&chunked=%d" % chunked)
    plain = await send(server, request)
    read: list[int] = []
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, response_reader(read))
    general = on(server, path)
    answer = await send(server, request)
    assert read == [300000, 300000]
    head, body = answer.split(b"\r\n\r\n", 1)
    if chunked:  # (chunked as it came; the pieces may be cut otherwise)
        assert b"\r\nTransfer-Encoding: chunked" in head and dechunk(body) == pattern(300000)
    else:
        assert b"\r\nContent-Length: 300000" in head and body == pattern(300000)
    if path == "relay":
        assert head == plain.split(b"\r\n\r\n", 1)[0]
        assert chunked or answer == plain  # byte for byte
    assert served_by(general, path)


async def test_a_body_read_whole_keeps_the_upstream_connection(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})
    read: list[int] = []
    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, response_reader(read))
    general = count_general(server)
    (pool,) = server._relays[0].pools
    for size in (10, 200_000):
        answer = await send(server, get(b"/big?size=%d" % size))
        assert body_of(answer) == pattern(size)
        await asyncio.sleep(0.02)
        assert len(pool._idle) == 1  # (the one connection, back in the pool each time)
    assert read == [10, 10, 200_000, 200_000] and general.requests == 0


async def test_an_async_middleware_reads_the_answer_on_its_way_out_and_changes_its_head(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    async def measure(ctx: ProxyContext) -> Any:
        yield
        assert ctx.response is not None
        data = await ctx.response.aread()
        ctx.response.headers["X-Body-Length"] = str(len(ctx.response.content))
        ctx.response.headers["X-Order"] = str(json.loads(data)["target"])

    handler_of(server).client_edge(measure)
    general = count_general(server)
    answer = await send(server, get(b"/echo?n=1"))
    head, body = answer.split(b"\r\n\r\n", 1)
    assert f"\r\nX-Body-Length: {len(body)}".encode() in head
    assert b"\r\nX-Order: /echo?n=1" in head and json.loads(body)["target"] == "/echo?n=1"
    assert general.requests == 0


async def test_a_listener_reads_the_answer_and_replaces_it(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url]})

    async def summarise(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        await event.response.aread()
        echo = event.response.json()
        event.response = Response(200, json={"method": echo["method"]})

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, summarise)
    general = count_general(server)
    answer = await send(server, get(b"/echo"))
    assert json.loads(body_of(answer)) == {"method": "GET"}
    assert general.requests == 0


async def test_an_answer_past_the_limit_fails_the_listener_with_a_500_and_closes_upstream(
    proxy_alone: ProxyServer, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    server = proxy_alone  # (the default limit: 1 MiB)
    errors: list[str] = []

    async def reader(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        try:
            await event.response.aread()
        except ListenerBodyTooLarge as exc:
            errors.append(str(exc))
            raise

    finished: list[int] = []
    dispatcher = server.system.dispatcher
    dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, reader)
    dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, lambda t: finished.append(t.status))
    general = count_general(server)
    (pool,) = server._relays[0].pools
    proxy_code = [tracemalloc.Filter(True, "*/ferryman/*"), tracemalloc.Filter(True, "*asyncio*")]
    upstream.reset()
    tracemalloc.start()
    try:
        answer = await send(server, get(b"/big?size=%d" % (16 * MIB)))
        snapshot = tracemalloc.take_snapshot().filter_traces(proxy_code)
    finally:
        tracemalloc.stop()
    held = sum(stat.size for stat in snapshot.statistics("filename"))
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert json.loads(body_of(answer)) == {"status": 500, "message": "Internal Server Error"}
    (error,) = errors
    assert f"larger than {MIB} bytes" in error and "limits.listener_body" in error
    assert "limits.listener_body" in caplog.text
    await asyncio.sleep(0.05)
    assert len(pool._idle) == 0  # closed, not drained nor reused
    assert finished == [500]
    assert held < 3 * MIB  # (16 MiB went by: never more than the limit and a read were held)
    assert general.requests == 0
    # The next request gets a fresh connection and its whole answer.
    assert body_of(await send(server, get(b"/big?size=1000"))) == pattern(1000)


async def test_a_listener_that_catches_the_limit_error_lets_the_answer_stream_on(
    serve: Serve, upstream: RecordingUpstream
) -> None:
    server = await serve({"api": [upstream.url, "limits.listener_body=100000"]})
    caught: list[int] = []

    async def reader(event: ProxyFilterEvent) -> None:
        assert event.response is not None
        try:
            await event.response.aread()
        except ListenerBodyTooLarge as exc:
            caught.append(exc.limit)

    server.system.dispatcher.add_listener(EVENT_FILTER_PROXY_RESPONSE, reader)
    general = count_general(server)
    for chunked in (0, 1):
        answer = await send(server, get(b"/big?size=500000&chunked=%d" % chunked))
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert (dechunk(body) if chunked else body) == pattern(500000)  # every byte, in order
    assert caught == [100000, 100000] and general.requests == 0


async def test_the_limit_is_a_setting_per_endpoint_with_a_default(serve: Serve) -> None:
    from ferryman.proxy.settings import EndpointSettings, LimitSettings, ProxySettings

    assert LimitSettings().listener_body == MIB
    settings = ProxySettings.model_validate(
        {
            "limits": {"listener_body": 2048},
            "endpoints": [
                {"name": "a", "port": 1, "url": "http://u"},
                {"name": "b", "port": 2, "url": "http://u", "limits": {"listener_body": None}},
            ],
        }
    )
    assert [e.limits.listener_body for e in settings.endpoints] == [2048, None]
    with pytest.raises(ValueError, match="listener_body"):
        EndpointSettings.model_validate(
            {"name": "a", "port": 1, "url": "http://u", "limits": {"listener_body": 0}}
        )
