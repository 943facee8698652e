"""ferryman's own HTTP/1.1 server (ServerProtocol) as a client sees it on a real socket.

A tiny RequestHandler answers: it echoes what it saw as JSON once the body has arrived, answers
late for ``/later``, never for ``/hang`` (until the test says so), and takes no body for
``/refuse``. Clients are raw sockets, so framing and connection handling are what is checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ferryman.server.protocol import (
    MAX_HEAD_SIZE,
    ServerExchange,
    ServerLimits,
    ServerProtocol,
    ServerState,
    response_head,
)
from tests.servers.slow_upstream import RawResponse, read_response, wait_until


@dataclass
class Seen:
    """One exchange as the handler saw it."""

    exchange: ServerExchange
    chunks: list[bytes] = field(default_factory=list)
    ended: bool = False
    lost: bool = False
    answered: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class Consumer:
    def __init__(self, seen: Seen, on_end: Callable[[], None] | None) -> None:
        self.seen = seen
        self.on_end = on_end

    def on_body(self, data: bytes) -> None:
        self.seen.chunks.append(data)

    def on_body_end(self) -> None:
        self.seen.ended = True
        if self.on_end is not None:
            self.on_end()

    def on_client_lost(self) -> None:
        self.seen.lost = True

    def pause_producing(self) -> None:
        pass

    def resume_producing(self) -> None:
        pass

    def on_tunnel_data(self, data: bytes) -> None:
        # The exchange is finished once the tunnel starts: raw bytes go to the transport.
        self.seen.exchange.protocol.transport_write(b"tunnel:" + data)


def answer(exchange: ServerExchange, status: int, body: bytes, **extra: str) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))]
    headers += [(name.encode(), value.encode()) for name, value in extra.items()]
    exchange.write(response_head(status, None, headers) + body)
    exchange.finish()


class Handler:
    """Routes on the path; records every exchange it is given, in order."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.loop = asyncio.get_running_loop()

    def on_request(self, exchange: ServerExchange) -> None:
        seen = Seen(exchange)
        self.seen.append(seen)
        path = exchange.target.split(b"?")[0]
        if path == b"/hang":
            exchange.set_consumer(Consumer(seen, None))
        elif path == b"/refuse":
            # Answers from the head alone: the body (if any) is never asked for.
            exchange.send_error(417, b'{"status": 417, "message": "no body"}')
        elif path == b"/later":
            exchange.set_consumer(
                Consumer(seen, lambda: self.loop.call_later(0.2, self.echo, seen))
            )
        elif path == b"/crash":
            raise RuntimeError("handler bug")
        elif path == b"/now":
            answer(exchange, 200, b"{}")  # from the head alone, before on_request returns
        elif path == b"/upgrade":
            self.loop.call_soon(self.accept_upgrade, seen)
        elif path == b"/upgrade-now":
            self.accept_upgrade(seen)
        elif path == b"/big":
            size = 32 * 1024 * 1024  # more than the sockets between can hold
            exchange.write(response_head(200, None, [(b"Content-Length", b"%d" % size)]))
            exchange.write(bytes(size))
        else:
            exchange.set_consumer(Consumer(seen, lambda: self.echo(seen)))

    def accept_upgrade(self, seen: Seen) -> None:
        exchange = seen.exchange
        exchange.set_consumer(Consumer(seen, None))
        exchange.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n\r\n")
        exchange.start_tunnel()

    def echo(self, seen: Seen) -> None:
        exchange = seen.exchange
        if exchange.finished:
            return
        seen.answered = True
        body = json.dumps(
            {
                "method": exchange.method.decode(),
                "target": exchange.target.decode("latin-1"),
                "version": exchange.http_version,
                "headers": [[n.decode(), v.decode()] for n, v in exchange.headers],
                "body": seen.body.decode("latin-1"),
                "chunks": len(seen.chunks),
            }
        ).encode()
        answer(exchange, 200, body)


@dataclass
class Served:
    port: int
    handler: Handler
    state: ServerState
    server: asyncio.Server

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Served] = []
    loop = asyncio.get_running_loop()

    async def start(**limits: Any) -> Served:
        handler = Handler()
        state = ServerState()
        configured = ServerLimits(**limits)
        server = await loop.create_server(
            lambda: ServerProtocol(handler, state, loop, limits=configured), "127.0.0.1", 0
        )
        served = Served(server.sockets[0].getsockname()[1], handler, state, server)
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.close()
        served.state.abort_all()
        await served.server.wait_closed()


async def at_eof(reader: asyncio.StreamReader, timeout: float = 3.0) -> bool:
    """The server closed the connection (nothing more than EOF arrives within ``timeout``)."""
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b""


def body_of(response: RawResponse) -> dict[str, object]:
    payload = response.json()
    assert isinstance(payload, dict)
    return payload


GET = b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n"


async def test_keep_alive_serves_several_requests_on_one_connection(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    for i in range(3):
        writer.write(GET % b"/n%d" % i)
        response = await read_response(reader)
        assert response.status == 200
        assert body_of(response)["target"] == f"/n{i}"
    assert len(served.state.connections) == 1
    writer.close()


async def test_pipelined_requests_are_answered_in_order(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    # The first is answered late: the others must wait their turn, not overtake it.
    writer.write(GET % b"/later" + GET % b"/second" + GET % b"/third")
    targets = [body_of(await read_response(reader))["target"] for _ in range(3)]
    assert targets == ["/later", "/second", "/third"]
    assert [seen.exchange.target for seen in served.handler.seen] == [
        b"/later",
        b"/second",
        b"/third",
    ]
    writer.close()


async def test_a_pipelined_request_reaches_the_handler_only_after_the_previous_answer(
    serve: Serve,
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/hang" + GET % b"/next")
    await asyncio.sleep(0.2)
    assert [seen.exchange.target for seen in served.handler.seen] == [b"/hang"]
    answer(served.handler.seen[0].exchange, 200, b"{}")
    assert (await read_response(reader)).body == b"{}"
    assert body_of(await read_response(reader))["target"] == "/next"
    writer.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTX/1.1\r\n\r\n",
    ],
)
async def test_a_malformed_request_gets_a_json_400_and_the_connection_closes(
    serve: Serve, garbage: bytes
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(garbage)
    response = await read_response(reader)
    assert response.status == 400
    assert response.header("content-type") == "application/json"
    assert response.header("connection") == "close"
    payload = body_of(response)
    assert payload["status"] == 400 and "malformed" in str(payload["message"])
    assert await at_eof(reader)
    assert served.handler.seen == []
    writer.close()


async def test_garbage_after_a_good_request_answers_the_good_one_first(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/good")
    assert (await read_response(reader)).status == 200
    writer.write(b"\x00\x01\x02 garbage\r\n\r\n")
    assert (await read_response(reader)).status == 400
    assert await at_eof(reader)
    assert [seen.exchange.target for seen in served.handler.seen] == [b"/good"]
    writer.close()


async def test_a_malformed_chunked_body_tells_the_handler_the_client_is_lost(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /hang HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\nZZZ-not-hex\r\n"
    )
    response = await read_response(reader)
    assert response.status == 400
    assert await at_eof(reader)
    [seen] = served.handler.seen
    assert seen.lost and not seen.ended
    assert seen.exchange.finished
    writer.close()


async def test_a_handler_failing_on_a_good_request_is_a_500_not_a_400(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/crash")
    response = await read_response(reader)
    assert response.status == 500
    assert "handler bug" in caplog.text
    writer.close()


async def test_a_huge_request_head_gets_431(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    big = b"x" * (MAX_HEAD_SIZE // 10)  # each header under the 8 KiB a field may have
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, big) for i in range(11))
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    response = await read_response(reader)
    assert response.status == 431
    assert body_of(response) == {"status": 431, "message": "the request head is too large"}
    assert await at_eof(reader)
    assert served.handler.seen == []
    writer.close()


async def test_a_huge_request_target_gets_414(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 414
    assert body_of(response)["message"] == "the request target is too long"
    assert served.handler.seen == []
    writer.close()


async def test_a_chunked_request_body_reaches_the_handler_de_chunked(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"hello ", b"chunked ", b"world"):
        writer.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(0.02)
    writer.write(b"0\r\nX-Trailer: t\r\n\r\n")
    response = await read_response(reader)
    payload = body_of(response)
    assert payload["body"] == "hello chunked world"
    [seen] = served.handler.seen
    assert seen.exchange.chunked and seen.exchange.content_length is None
    # The connection stays usable after a chunked body with trailers.
    writer.write(GET % b"/after")
    assert body_of(await read_response(reader))["target"] == "/after"
    writer.close()


async def test_a_content_length_body_arrives_whole_even_in_pieces(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    body = bytes(range(256)) * 40
    writer.write(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    for start in range(0, len(body), 3000):
        writer.write(body[start : start + 3000])
        await writer.drain()
        await asyncio.sleep(0.01)
    payload = body_of(await read_response(reader))
    assert payload["body"].encode("latin-1") == body  # type: ignore[union-attr]
    assert served.handler.seen[0].exchange.content_length == len(body)
    writer.close()


async def test_body_chunks_that_arrive_before_the_consumer_are_replayed(serve: Serve) -> None:
    """A handler may ask for the body later; nothing sent meanwhile is lost."""
    served = await serve()
    late: list[ServerExchange] = []

    def on_request(exchange: ServerExchange) -> None:
        late.append(exchange)

    served.handler.on_request = on_request  # type: ignore[method-assign]
    reader, writer = await served.connect()
    writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
    await asyncio.sleep(0.05)
    writer.write(b"def")
    await asyncio.sleep(0.05)
    seen = Seen(late[0])
    late[0].set_consumer(Consumer(seen, None))
    assert seen.body == b"abcdef" and seen.ended
    answer(late[0], 200, b"ok")
    assert (await read_response(reader)).body == b"ok"
    writer.close()


async def test_expect_100_continue_is_answered_when_the_handler_takes_the_body(
    serve: Serve,
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"data")
    response = await read_response(reader)
    assert response.status == 200 and body_of(response)["body"] == "data"
    writer.close()


async def test_expect_100_continue_refused_gets_no_continue_and_the_connection_closes(
    serve: Serve,
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    response = await read_response(reader)
    assert response.informational == []
    assert response.status == 417
    # The body it did not read would be taken for the next request: the connection closes.
    assert response.header("connection") == "close"
    assert await at_eof(reader)
    writer.close()


@pytest.mark.parametrize("path", [b"/refuse", b"/now"])
async def test_a_bodiless_request_answered_from_its_head_keeps_the_connection(
    serve: Serve, path: bytes
) -> None:
    """A GET has no body to wait for: answering it inside ``on_request`` (an error, a cached
    answer) must not cost the client its kept-alive connection."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % path)
    response = await read_response(reader)
    assert response.status in (200, 417) and response.header("connection") is None
    writer.write(GET % b"/again")
    assert body_of(await read_response(reader))["target"] == "/again"
    writer.close()


async def test_an_http_1_0_client_is_closed_after_its_answer(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    response = await read_response(reader)
    assert body_of(response)["version"] == "1.0"
    assert await at_eof(reader)
    writer.close()


async def test_an_http_1_0_client_asking_for_keep_alive_keeps_its_connection(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    for i in range(2):
        writer.write(b"GET /old%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
        assert body_of(await read_response(reader))["target"] == f"/old{i}"
    assert not await at_eof(reader, 0.2)
    writer.close()


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
@pytest.mark.parametrize(
    "connection",
    [b"", b"Connection: keep-alive\r\n", b"Proxy-Connection: keep-alive\r\n", b"Connection: x\r\n"],
)
async def test_the_handler_sees_the_version_the_request_line_gave(
    serve: Serve, version: bytes, connection: bytes
) -> None:
    """Worked out from llhttp's keep-alive flag when it can be (see on_headers_complete)."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /v HTTP/" + version + b"\r\nHost: t\r\n" + connection + b"\r\n")
    assert body_of(await read_response(reader))["version"] == version.decode()
    writer.close()


async def test_connection_close_from_an_http_1_1_client_is_honoured(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert (await read_response(reader)).status == 200
    assert await at_eof(reader)
    writer.close()


async def test_idle_connections_are_closed_after_the_keepalive_timeout(serve: Serve) -> None:
    served = await serve(keepalive=1)
    reader, writer = await served.connect()
    writer.write(GET % b"/once")
    assert (await read_response(reader)).status == 200
    # Closed by the once-a-second sweep: after more than 1 s idle, within a few seconds.
    assert not await at_eof(reader, 0.8)
    assert await at_eof(reader, 4)
    assert await wait_until(lambda: not served.state.connections)
    writer.close()


async def test_a_connection_busy_with_a_request_is_not_closed_as_idle(serve: Serve) -> None:
    served = await serve(keepalive=1)
    reader, writer = await served.connect()
    writer.write(GET % b"/hang")
    assert not await at_eof(reader, 3)
    answer(served.handler.seen[0].exchange, 200, b"late")
    assert (await read_response(reader)).body == b"late"
    writer.close()


async def test_a_client_that_disconnects_is_reported_to_the_consumer(serve: Serve) -> None:
    served = await serve()
    _, writer = await served.connect()
    writer.write(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial")
    assert await wait_until(lambda: bool(served.handler.seen))
    writer.close()
    seen = served.handler.seen[0]
    assert await wait_until(lambda: seen.lost)
    assert seen.exchange.finished and not seen.ended
    assert await wait_until(lambda: not served.state.connections)


async def test_writes_after_the_client_left_are_ignored(serve: Serve) -> None:
    served = await serve()
    _, writer = await served.connect()
    writer.write(GET % b"/hang")
    assert await wait_until(lambda: bool(served.handler.seen))
    writer.close()
    seen = served.handler.seen[0]
    assert await wait_until(lambda: seen.lost)
    answer(seen.exchange, 200, b"too late")  # must not raise


async def test_start_closing_closes_idle_connections_and_lets_busy_ones_finish(
    serve: Serve,
) -> None:
    served = await serve()
    idle_reader, idle_writer = await served.connect()
    idle_writer.write(GET % b"/warm")
    assert (await read_response(idle_reader)).status == 200
    busy_reader, busy_writer = await served.connect()
    busy_writer.write(GET % b"/hang")
    assert await wait_until(lambda: len(served.handler.seen) == 2)

    served.state.start_closing()
    assert await at_eof(idle_reader)
    waiting = asyncio.ensure_future(served.state.wait_closed())
    await asyncio.sleep(0.1)
    assert not waiting.done()  # the busy connection is still open

    answer(served.handler.seen[1].exchange, 200, b"finished")
    assert (await read_response(busy_reader)).body == b"finished"
    assert await at_eof(busy_reader)
    await asyncio.wait_for(waiting, 3)
    idle_writer.close()
    busy_writer.close()


async def test_connections_opened_while_closing_are_closed_at_once(serve: Serve) -> None:
    served = await serve()
    served.state.start_closing()
    reader, writer = await served.connect()
    writer.write(GET % b"/late")
    assert await at_eof(reader)
    assert served.handler.seen == []
    writer.close()


async def test_pipelined_requests_queued_at_shutdown_are_not_served(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(GET % b"/hang" + GET % b"/queued")
    assert await wait_until(lambda: len(served.handler.seen) == 1)
    await asyncio.sleep(0.05)
    served.state.start_closing()
    answer(served.handler.seen[0].exchange, 200, b"first")
    assert (await read_response(reader)).body == b"first"
    assert await at_eof(reader)
    assert len(served.handler.seen) == 1
    writer.close()


async def test_wait_closed_returns_at_once_without_connections(serve: Serve) -> None:
    served = await serve()
    served.state.start_closing()
    await asyncio.wait_for(served.state.wait_closed(), 1)


@pytest.mark.parametrize("path", [b"/upgrade", b"/upgrade-now"])
async def test_an_accepted_upgrade_turns_the_connection_into_a_tunnel(
    serve: Serve, path: bytes
) -> None:
    """Accepted later (as the relay does, on the upstream's 101) or at once in ``on_request``."""
    served = await serve(upgrades=["test"])
    reader, writer = await served.connect()
    writer.write(
        b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
        b"early bytes" % path
    )
    response = await read_response(reader)
    assert response.status == 101
    assert await asyncio.wait_for(reader.readexactly(18), 3) == b"tunnel:early bytes"
    writer.write(b"GET / HTTP/1.1\r\n\r\n")  # not HTTP any more: relayed as bytes
    assert await asyncio.wait_for(reader.readexactly(25), 3) == b"tunnel:GET / HTTP/1.1\r\n\r\n"
    writer.close()


async def test_a_refused_upgrade_closes_the_connection(serve: Serve) -> None:
    served = await serve(upgrades=["test"])
    reader, writer = await served.connect()
    writer.write(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 200
    assert await at_eof(reader)
    writer.close()


@pytest.mark.parametrize("offer", [b"h2c", b"test", b"websocket, h2c"])
async def test_an_upgrade_the_listener_does_not_take_is_ignored(serve: Serve, offer: bytes) -> None:
    """Only the listener's ``upgrades`` reach the handler as upgrades; any other offer is
    served as plain HTTP (RFC 9110 section 7.8), with the bytes after its head parsed as the
    next request, not tunnelled."""
    served = await serve(upgrades=["websocket2"] if offer == b"websocket, h2c" else ["other"])
    reader, writer = await served.connect()
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n" % offer
    )
    first = await read_response(reader)
    assert first.status == 200 and body_of(first)["target"] == "/echo"
    second = await read_response(reader)
    assert second.status == 200 and body_of(second)["target"] == "/next"
    assert [seen.exchange.upgrade for seen in served.handler.seen] == [False, False]
    writer.close()


async def test_an_ignored_upgrade_with_a_body_gets_400(serve: Serve) -> None:
    """llhttp does not parse the body of an upgrade request (it would be the new protocol's):
    one the listener does not take cannot be relayed as HTTP either."""
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    assert (await read_response(reader)).status == 400
    assert await at_eof(reader)
    assert served.handler.seen == []


async def test_many_clients_at_once(serve: Serve) -> None:
    served = await serve()

    async def one(i: int) -> object:
        reader, writer = await served.connect()
        try:
            writer.write(
                b"POST /c%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%d"
                % (i, len(str(i)), i)
            )
            return body_of(await read_response(reader))["body"]
        finally:
            writer.close()

    bodies = await asyncio.gather(*(one(i) for i in range(50)))
    assert bodies == [str(i) for i in range(50)]


def test_response_head_uses_the_reason_phrase_or_the_one_given() -> None:
    assert response_head(404, None, []) == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert response_head(200, b"Fine", [(b"A", b"1")]) == b"HTTP/1.1 200 Fine\r\nA: 1\r\n\r\n"
