"""WebSocket client connections against a real ``websockets`` server, upgraded through the pool."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import generate_accept_token

from ferryman import (
    AsyncConnectionPool,
    Headers,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    UnsupportedProtocol,
)
from ferryman.client.transport import create_ssl_context
from ferryman.client.websocket import (
    WS,
    WebSocketConnection,
    WebSocketHandshake,
    _check_switching_protocols,
    handshake_request,
    open_websocket,
)
from tests.servers.ws_echo import CLOSE_4001_REASON, WsEchoServer


@pytest.fixture(scope="module")
def wss_server(server_cert: trustme.LeafCert) -> Iterator[WsEchoServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    server = WsEchoServer(context).start()
    yield server
    server.stop()


async def connect(
    pool: AsyncConnectionPool, url: str, handler: WS | None = None, **options: Any
) -> WebSocketConnection:
    subprotocols = options.pop("subprotocols", ())
    extensions = options.pop("extensions", None)
    request, handshake = handshake_request(url, subprotocols=subprotocols, extensions=extensions)
    response = await pool.handle_async_request(request)
    return await open_websocket(response, handshake, handler, **options)


async def server_close(server: WsEchoServer) -> tuple[str, int | None, str | None]:
    """What the server saw of the next closing handshake."""
    return await asyncio.to_thread(server.closes.get, timeout=10)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Let the event loop report a closed socket (a few iterations), then check."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    assert predicate()


class Recorder(WS):
    """Records every callback; ``done`` is set by ``on_close``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.done = asyncio.Event()

    def on_open(self, ws: WebSocketConnection) -> None:
        self.calls.append(("open", None))

    async def on_message(self, ws: WebSocketConnection, message: str | bytes) -> None:
        self.calls.append(("message", message))

    def on_ping(self, ws: WebSocketConnection, data: bytes) -> None:
        self.calls.append(("ping", data))

    async def on_pong(self, ws: WebSocketConnection, data: bytes) -> None:
        self.calls.append(("pong", data))

    def on_close(self, ws: WebSocketConnection) -> None:
        self.calls.append(("close", (ws.close_code, ws.close_reason, ws.closed)))
        self.done.set()

    def messages(self) -> list[Any]:
        return [value for name, value in self.calls if name == "message"]


# -- the handshake ------------------------------------------------------------------------------


@given(
    secure=st.booleans(),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=st.lists(st.text("abcXYZ019-._~", min_size=1, max_size=8), max_size=4),
    query=st.text("abc=&019", max_size=12),
    subprotocols=st.lists(
        st.text("abcdefgh.0123456789", min_size=1, max_size=8), max_size=3, unique=True
    ),
)
def test_handshake_request_maps_the_url_and_sets_the_upgrade_headers(
    secure: bool, port: int | None, path: list[str], query: str, subprotocols: list[str]
) -> None:
    authority = "example.test" + (f":{port}" if port is not None else "")
    target = "/" + "/".join(path) + (f"?{query}" if query else "")
    url = f"{'wss' if secure else 'ws'}://{authority}{target}#fragment"
    request, handshake = handshake_request(url, subprotocols=subprotocols)
    assert request.url.scheme == ("https" if secure else "http")
    assert request.url.port == port
    assert request.url.raw_path == target.encode()
    assert request.url.fragment == ""
    assert request.method == "GET"
    headers = request.headers
    assert headers["upgrade"] == "websocket"
    assert headers["connection"] == "Upgrade"
    assert headers["sec-websocket-version"] == "13"
    assert len(base64.b64decode(headers["sec-websocket-key"], validate=True)) == 16
    assert headers["sec-websocket-key"].encode() == handshake.key
    assert handshake.subprotocols == tuple(subprotocols)
    if subprotocols:
        assert headers.get_list("sec-websocket-protocol", split_commas=True) == subprotocols
    else:
        assert "sec-websocket-protocol" not in headers


def test_each_handshake_has_its_own_key_and_keeps_caller_headers() -> None:
    first, hs1 = handshake_request("ws://h/", headers={"Authorization": "Bearer t", "Upgrade": "x"})
    _, hs2 = handshake_request("ws://h/")
    assert hs1.key != hs2.key
    assert first.headers["authorization"] == "Bearer t"
    assert first.headers.get_list("upgrade") == ["websocket"]


def test_a_hand_set_protocol_header_is_the_offer_checked_against() -> None:
    request, handshake = handshake_request(
        "ws://h/", headers={"Sec-WebSocket-Protocol": " a.v2 ,b.v1"}
    )
    assert handshake.subprotocols == ("a.v2", "b.v1")
    assert request.headers.get_list("sec-websocket-protocol") == ["a.v2, b.v1"]
    accept = generate_accept_token(handshake.key).decode()
    chosen = _switching_headers(accept, **{"Sec-WebSocket-Protocol": "b.v1"})
    assert _check_switching_protocols(chosen, handshake) == ("b.v1", [])
    _, same = handshake_request(
        "ws://h/", headers={"Sec-WebSocket-Protocol": "a.v2, b.v1"}, subprotocols=["a.v2", "b.v1"]
    )
    assert same.subprotocols == ("a.v2", "b.v1")
    with pytest.raises(ValueError, match="offer different subprotocols: give them one way"):
        handshake_request("ws://h/", headers={"Sec-WebSocket-Protocol": "a"}, subprotocols=["b"])


def test_subprotocol_names_are_checked() -> None:
    _, handshake = handshake_request("ws://h/", subprotocols="graphql-transport-ws")
    assert handshake.subprotocols == ("graphql-transport-ws",)  # a string is one name
    for bad in (["a, b"], ["two words"], [""], ["é"]):
        with pytest.raises(ValueError, match="not a valid WebSocket subprotocol name"):
            handshake_request("ws://h/", subprotocols=bad)
    with pytest.raises(ValueError, match="twice"):
        handshake_request("ws://h/", subprotocols=["a", "a"])


def test_extensions_are_templates_and_cannot_be_hand_set() -> None:
    template = PerMessageDeflate(server_no_context_takeover=True)
    request, first = handshake_request("ws://h/", extensions=[template])
    _, second = handshake_request("ws://h/", extensions=[template])
    assert first.extensions[0] is not template and second.extensions[0] is not first.extensions[0]
    assert request.headers["sec-websocket-extensions"].endswith("; server_no_context_takeover")
    with pytest.raises(ValueError, match="cannot be set by hand"):
        handshake_request("ws://h/", headers={"Sec-WebSocket-Extensions": "permessage-deflate"})


def test_handshake_request_refuses_other_schemes() -> None:
    with pytest.raises(UnsupportedProtocol, match="ftp"):
        handshake_request("ftp://example.test/")


def _switching_headers(accept: str, **extra: str) -> Headers:
    return Headers(
        {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": accept, **extra}
    )


@given(forged=st.text(string.ascii_letters + string.digits + "+/= ", max_size=40))
def test_only_the_accept_token_of_our_key_is_accepted(forged: str) -> None:
    _, handshake = handshake_request("ws://h/", subprotocols=["a"])
    expected = generate_accept_token(handshake.key).decode()
    assert _check_switching_protocols(_switching_headers(expected), handshake) == (None, [])
    if forged != expected:
        with pytest.raises(RemoteProtocolError, match="Sec-WebSocket-Accept"):
            _check_switching_protocols(_switching_headers(forged), handshake)


def test_a_101_without_upgrade_headers_is_refused() -> None:
    handshake = WebSocketHandshake(key=b"dGhlIHNhbXBsZSBub25jZQ==")
    accept = generate_accept_token(handshake.key).decode()
    with pytest.raises(RemoteProtocolError, match="Upgrade: websocket"):
        _check_switching_protocols(Headers({"Sec-WebSocket-Accept": accept}), handshake)
    with pytest.raises(RemoteProtocolError, match="Connection: Upgrade"):
        _check_switching_protocols(
            Headers({"Upgrade": "websocket", "Sec-WebSocket-Accept": accept}), handshake
        )


# -- over a real server ---------------------------------------------------------------------------


async def test_messages_by_iteration_then_close(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo")
        assert ws.subprotocol is None
        await ws.send("hello, world")
        await ws.send(b"\x00\x01binary")
        assert await anext(ws) == "hello, world"
        assert await anext(ws) == b"\x00\x01binary"
        await ws.close()
        assert ws.closed and ws.close_code == 1000
        assert await server_close(ws_server) == ("/echo", 1000, "")
        with pytest.raises(StopAsyncIteration):
            await anext(ws)
        await eventually(lambda: pool.connections == [])


async def test_write_from_sync_code_keeps_the_call_order(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        async with await connect(pool, ws_server.url + "/echo") as ws:
            for number in range(50):
                ws.write(str(number))
            await ws.send("last")
            received = [await anext(ws) for _ in range(51)]
        assert received == [str(number) for number in range(50)] + ["last"]
        assert ws.closed and ws.close_code == 1000
        assert (await server_close(ws_server))[1] == 1000


async def test_handler_sees_open_messages_and_close(ws_server: WsEchoServer) -> None:
    class Greeter(Recorder):
        def on_open(self, ws: WebSocketConnection) -> None:
            super().on_open(ws)
            ws.write("hello")

        async def on_message(self, ws: WebSocketConnection, message: str | bytes) -> None:
            await super().on_message(ws, message)
            if message == "hello":
                await ws.send(b"again")
            else:
                await ws.close(1000, "done")

    handler = Greeter()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo", handler)
        assert handler.calls == [("open", None)]  # on_open has run when the connection returns
        await asyncio.wait_for(handler.done.wait(), 10)
        await ws.wait_closed()
        assert handler.calls == [
            ("open", None),
            ("message", "hello"),
            ("message", b"again"),
            ("close", (1000, "done", True)),
        ]
        assert await server_close(ws_server) == ("/echo", 1000, "done")
        with pytest.raises(RuntimeError, match="on_message"):
            await anext(ws)


async def test_subprotocol_is_negotiated(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/subprotocol", subprotocols=["x", "chat.v1"])
        assert ws.subprotocol == "chat.v1"
        assert await anext(ws) == "chat.v1"
        await ws.close()
        await server_close(ws_server)


async def test_an_unoffered_subprotocol_fails_the_handshake(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(RemoteProtocolError, match=r"'never\.offered', which was not offered"):
            await connect(pool, ws_server.url + "/bad-subprotocol", subprotocols=["chat.v1"])
        await server_close(ws_server)
        await eventually(lambda: pool.connections == [])


async def test_a_wrong_accept_token_fails_the_handshake(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(RemoteProtocolError, match="Sec-WebSocket-Accept"):
            await connect(pool, ws_server.url + "/bad-accept")
        await server_close(ws_server)
        await eventually(lambda: pool.connections == [])


async def test_a_refused_handshake_raises_and_frees_the_connection(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool(max_connections_per_origin=1) as pool:
        with pytest.raises(ProtocolError, match="refused the WebSocket handshake: 403 Forbidden"):
            await connect(pool, ws_server.url + "/forbidden")
        # The one connection slot is usable again.
        ws = await connect(pool, ws_server.url + "/echo")
        await ws.send("still works")
        assert await anext(ws) == "still works"
        await ws.close()
        await server_close(ws_server)


async def test_server_initiated_close(ws_server: WsEchoServer) -> None:
    handler = Recorder()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/close-4001", handler)
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (4001, CLOSE_4001_REASON)
        assert handler.calls[-1] == ("close", (4001, CLOSE_4001_REASON, True))
        assert await server_close(ws_server) == ("/close-4001", 4001, CLOSE_4001_REASON)
        await eventually(lambda: pool.connections == [])


async def test_iteration_ends_when_the_server_closes(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/close-4001")
        assert [message async for message in ws] == []
        assert ws.close_code == 4001
        await server_close(ws_server)


async def test_server_ping_is_answered_and_reported(ws_server: WsEchoServer) -> None:
    handler = Recorder()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/ping", handler)
        while not handler.messages():
            await asyncio.sleep(0.01)
        assert handler.calls[1:] == [("ping", b"are you there"), ("message", "pong received")]
        await ws.close()
        await server_close(ws_server)


async def test_our_pings_and_keepalive_get_pongs(ws_server: WsEchoServer) -> None:
    handler = Recorder()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo", handler, ping_interval=0.01)
        await ws.ping(b"mine")
        while len([name for name, _ in handler.calls if name == "pong"]) < 3:
            await asyncio.sleep(0.01)
        pongs = [data for name, data in handler.calls if name == "pong"]
        assert b"mine" in pongs
        assert any(len(data) == 4 for data in pongs)  # the keepalive's random payloads
        assert not ws.closed
        await ws.close()
        assert ws.close_code == 1000
        await server_close(ws_server)


async def test_big_fragmented_messages_are_reassembled(ws_server: WsEchoServer) -> None:
    size = 1 << 20
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + f"/big?size={size}&fragment=65536")
        binary = await anext(ws)
        assert binary == bytes(range(256)) * (size // 256)
        assert await anext(ws) == "é" * (size // 2)
        await ws.send(binary)  # and the other way, one big frame
        assert await anext(ws) == binary
        await ws.close()
        await server_close(ws_server)


async def test_a_too_big_message_closes_with_1009(
    ws_server: WsEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/big?size=200000", max_message_size=100_000)
        assert [message async for message in ws] == []
        assert ws.close_code == 1009
        assert (await server_close(ws_server))[1] == 1009
    assert "exceeds max_message_size" in caplog.text


async def test_a_failing_handler_is_logged_and_closes_with_1011(
    ws_server: WsEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(WS):
        def on_message(self, ws: WebSocketConnection, message: str | bytes) -> None:
            raise ValueError("handler bug")

    handler = Failing()
    caplog.set_level(logging.ERROR, "ferryman.client.websocket")
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo", handler)
        await ws.send("boom")
        await ws.wait_closed()
        assert ws.close_code == 1011
        assert (await server_close(ws_server))[1:] == (1011, "handler error")
    assert "Failing.on_message failed" in caplog.text
    assert "handler bug" in caplog.text


async def test_a_full_queue_holds_the_reader_back_without_losing_order(
    ws_server: WsEchoServer,
) -> None:
    count = 300
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + f"/burst?n={count}", max_queue=2)
        received = []
        async for message in ws:
            assert len(ws._messages) <= 2
            received.append(message)
            if len(received) == count:
                break
        assert received == [str(number) for number in range(count)]
        await ws.close()
        await server_close(ws_server)


async def test_close_while_the_queue_is_full(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/burst?n=50", max_queue=1)
        assert await anext(ws) == "0"
        await ws.close()  # the reader, stuck on the full queue, must still read the answer
        assert ws.close_code == 1000
        remaining = [message async for message in ws]
        assert remaining == [str(number) for number in range(1, len(remaining) + 1)]
        await server_close(ws_server)


async def test_a_vanished_server_is_reported_as_1006(ws_server: WsEchoServer) -> None:
    handler = Recorder()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/drop", handler)
        await ws.send("bye")
        await ws.wait_closed()
        assert handler.calls[-1] == ("close", (1006, "", True))
        await server_close(ws_server)
        await eventually(lambda: pool.connections == [])


async def test_close_gives_up_on_a_peer_that_never_answers(ws_server: WsEchoServer) -> None:
    handler = Recorder()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/deaf", handler)
        await ws.close(timeout=0.1)
        assert ws.closed
        assert handler.calls[-1] == ("close", (1006, "", True))  # no close frame came back
        await eventually(lambda: pool.connections == [])


async def test_an_unanswered_keepalive_ping_closes_the_connection(
    ws_server: WsEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ferryman.client.websocket")
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/deaf", ping_interval=0.02, close_timeout=0.1)
        await ws.wait_closed()
        assert ws.close_code == 1006
        assert "keepalive ping unanswered" in caplog.text
        await eventually(lambda: pool.connections == [])


async def test_sending_after_close_raises(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo")
        await ws.close()
        with pytest.raises(LocalProtocolError, match="closing or closed"):
            await ws.send("too late")
        with pytest.raises(LocalProtocolError):
            ws.write("too late")
        await ws.close()  # closing twice is harmless
        await server_close(ws_server)


async def test_permessage_deflate_is_negotiated(ws_server: WsEchoServer) -> None:
    message = "compressible " * 10_000
    while not ws_server.request_headers.empty():  # heads of earlier tests' connections
        ws_server.request_headers.get_nowait()
    async with AsyncConnectionPool() as pool:
        ws = await connect(pool, ws_server.url + "/echo", extensions=[PerMessageDeflate()])
        offered = await asyncio.to_thread(ws_server.request_headers.get, timeout=10)
        assert offered["sec-websocket-extensions"].startswith("permessage-deflate")
        assert [ext.name for ext in ws._protocol._proto.extensions] == ["permessage-deflate"]
        await ws.send(message)
        assert await anext(ws) == message
        await ws.close()
        await server_close(ws_server)


async def test_finished_websockets_give_their_pool_slot_back(ws_server: WsEchoServer) -> None:
    async with AsyncConnectionPool(max_connections_per_origin=1) as pool:
        for number in range(3):
            request, handshake = handshake_request(ws_server.url + "/echo")
            request.extensions["timeout"] = {"pool": 5}
            ws = await open_websocket(await pool.handle_async_request(request), handshake, None)
            await ws.send(str(number))
            assert await anext(ws) == str(number)
            await ws.close()
            await server_close(ws_server)
            await eventually(lambda: pool.connections == [])


async def test_over_tls(wss_server: WsEchoServer, ca: trustme.CA) -> None:
    context = create_ssl_context()
    ca.configure_trust(context)
    handler = Recorder()
    async with AsyncConnectionPool(ssl_context=context) as pool:
        ws = await connect(pool, wss_server.url + "/echo", handler)
        assert ws._stream.get_extra_info("ssl_object") is not None
        await ws.send("secret")
        while not handler.messages():
            await asyncio.sleep(0.01)
        await ws.close()
        assert handler.messages() == ["secret"]
        assert handler.calls[-1] == ("close", (1000, "", True))
        assert await server_close(wss_server) == ("/echo", 1000, "")
        await eventually(lambda: pool.connections == [])
