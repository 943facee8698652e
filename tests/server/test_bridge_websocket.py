"""ASGI ``websocket`` scopes served by ferryman's own server (ASGIBridge), seen by a real client
(the ``websockets`` package) and by raw sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from ferryman.server.bridge import ASGIBridge
from ferryman.server.controllers import Message, Receive, Scope, Send
from ferryman.server.protocol import ServerLimits, ServerProtocol, ServerState
from tests.server.helpers import BridgeServe, bridge_servers
from tests.servers.slow_upstream import roundtrip, wait_until

Serve = BridgeServe
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve an ASGI app on 127.0.0.1 through the bridge; returns the port."""
    async with bridge_servers() as start:
        yield start


class EchoApp:
    """Echoes messages; each path is one behaviour. What the app received last is kept."""

    def __init__(self) -> None:
        self.disconnects: list[Message] = []
        self.release = asyncio.Event()
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        path = scope["path"]
        if path == "/refuse":
            await send({"type": "websocket.close", "code": 1000})
            return
        if path == "/deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 418,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"tea"})
            return
        if path == "/crash-before-accept":
            raise RuntimeError("boom")
        chosen = next((p for p in ("chat.v2", "chat.v1") if p in scope["subprotocols"]), None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        if path == "/scope":
            shown = {
                key: value.decode("latin-1") if isinstance(value, bytes) else value
                for key, value in scope.items()
                if key not in ("headers", "state", "asgi")
            }
            shown["headers"] = {n.decode(): v.decode() for n, v in scope["headers"]}
            extensions = scope["extensions"]
            raw = extensions.get("ferryman.raw_headers", {}).get("headers", [])
            shown["raw_headers"] = {n.decode(): v.decode() for n, v in raw}
            shown["extensions"] = sorted(extensions)
            await send({"type": "websocket.send", "text": json.dumps(shown)})
        elif path == "/close-4001":
            await send({"type": "websocket.close", "code": 4001, "reason": "going away"})
            return
        elif path == "/crash-after-accept":
            raise RuntimeError("boom")
        elif path == "/return":
            return
        elif path == "/ticker":
            try:
                while True:
                    await send({"type": "websocket.send", "text": "tick"})
                    await asyncio.sleep(0.01)
            except OSError as exc:
                self.errors.append(exc)
                return
        elif path == "/slow-reader":
            await self.release.wait()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(message)
                return
            if message.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4002})
                self.disconnects.append(await receive())
                return
            reply = {"type": "websocket.send", "text": message.get("text")}
            if message.get("bytes") is not None:
                reply = {"type": "websocket.send", "bytes": message["bytes"]}
            await send(reply)


@pytest.fixture
def app() -> EchoApp:
    return EchoApp()


@pytest.fixture
async def url(serve: Serve, app: EchoApp) -> str:
    return f"ws://127.0.0.1:{await serve(app)}"


async def test_text_and_bytes_are_echoed(url: str) -> None:
    async with connect(f"{url}/echo", max_size=None) as ws:
        await ws.send("hello é")
        assert await ws.recv() == "hello é"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        big = bytes(range(256)) * 8192  # 2 MiB, many frames and reads
        await ws.send(big)
        assert await ws.recv() == big
        await ws.send(["frag", "mented"])  # one message in several frames
        assert await ws.recv() == "fragmented"


async def test_compression_is_negotiated(url: str) -> None:
    async with connect(f"{url}/echo") as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        text = "compressible " * 10000
        await ws.send(text)
        assert await ws.recv() == text
    async with connect(f"{url}/echo", compression=None) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("plain")
        assert await ws.recv() == "plain"


async def test_the_scope(url: str) -> None:
    async with connect(
        f"{url}/sc%6Fpe?x=1&y=%2F",
        subprotocols=[Subprotocol("chat.v1")],
        additional_headers={"X-Mine": "1"},
    ) as ws:
        shown = json.loads(await ws.recv())
    # %6F is "o": the app was routed on the decoded path; raw_path keeps the bytes as sent.
    assert shown["type"] == "websocket"
    assert shown["path"] == "/scope"
    assert shown["raw_path"] == "/sc%6Fpe"
    assert shown["query_string"] == "x=1&y=%2F"
    assert shown["scheme"] == "ws"
    assert shown["http_version"] == "1.1"
    assert shown["subprotocols"] == ["chat.v1"]
    assert shown["client"][0] == "127.0.0.1"
    assert shown["server"][1] == int(url.rsplit(":", 1)[1])
    assert shown["headers"]["x-mine"] == "1"
    assert shown["headers"]["upgrade"] == "websocket"
    assert "websocket.http.response" in shown["extensions"]
    assert shown["raw_headers"]["X-Mine"] == "1"  # (the names as the client spelled them)


async def test_subprotocol_chosen_by_the_app(url: str) -> None:
    async with connect(
        f"{url}/echo", subprotocols=[Subprotocol("other"), Subprotocol("chat.v2")]
    ) as ws:
        assert ws.subprotocol == "chat.v2"
    async with connect(f"{url}/echo") as ws:
        assert ws.subprotocol is None


async def test_client_close_code_reaches_the_app(url: str, app: EchoApp) -> None:
    async with connect(f"{url}/echo") as ws:
        await ws.send("x")
        await ws.recv()
        await ws.close(4000, "bye now")
    assert ws.close_code == 4000
    assert await wait_until(lambda: bool(app.disconnects))
    assert app.disconnects[0]["code"] == 4000
    assert app.disconnects[0]["reason"] == "bye now"


async def test_app_close_code_reaches_the_client(url: str, app: EchoApp) -> None:
    async with connect(f"{url}/close-4001") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == "going away"
    async with connect(f"{url}/echo") as ws:
        await ws.send("close-me")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4002
    assert await wait_until(lambda: bool(app.disconnects))
    assert app.disconnects[0]["code"] == 4002  # receive after close says it is closed


async def test_app_returning_after_accept_closes_normally(url: str) -> None:
    async with connect(f"{url}/return") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1000


async def test_close_before_accept_is_a_403(url: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{url}/refuse"):
            pass
    assert caught.value.response.status_code == 403
    assert json.loads(caught.value.response.body or b"")["status"] == 403


async def test_denial_response(url: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{url}/deny"):
            pass
    assert caught.value.response.status_code == 418
    assert caught.value.response.body == b"no tea"
    assert caught.value.response.headers["Content-Type"] == "text/plain"


async def test_app_failures(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{url}/crash-before-accept"):
            pass
    assert caught.value.response.status_code == 500
    async with connect(f"{url}/crash-after-accept") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
    assert "the ASGI application failed" in caplog.text


async def test_client_loss_is_a_1006_disconnect(url: str, app: EchoApp) -> None:
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example accept token
    writer.transport.abort()  # gone without a close frame
    assert await wait_until(lambda: bool(app.disconnects))
    assert app.disconnects[0]["code"] == 1006


async def test_a_send_after_the_client_left_raises_oserror(url: str, app: EchoApp) -> None:
    async with connect(f"{url}/ticker") as ws:
        assert await ws.recv() == "tick"
        ws.transport.abort()
    assert await wait_until(lambda: bool(app.errors))
    assert isinstance(app.errors[0], OSError)


async def test_reading_pauses_while_the_app_does_not_receive(url: str, app: EchoApp) -> None:
    chunk = b"x" * 65536
    async with connect(f"{url}/slow-reader", max_size=None, compression=None) as ws:

        async def flood() -> None:
            for _ in range(1000):  # 64 MiB: more than socket buffers hold
                await ws.send(chunk)

        sender = asyncio.ensure_future(flood())
        done, _ = await asyncio.wait((sender,), timeout=1.0)
        assert not done, "the server read everything while its application was not reading"
        app.release.set()  # the echoes come back while the client still sends: read them too

        async def read() -> int:
            count = 0
            for _ in range(1000):
                assert await ws.recv() == chunk
                count += 1
            return count

        count, _ = await asyncio.wait_for(asyncio.gather(read(), sender), 30)
        assert count == 1000


async def test_bad_handshakes_get_4xx(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    response = await roundtrip(
        port,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    assert response.status == 426
    assert response.header("sec-websocket-version") == "13"
    response = await roundtrip(
        port,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
    )
    assert response.status == 400


async def test_an_upgrade_the_listener_takes_but_the_bridge_cannot_gets_501() -> None:
    """A listener configured to take h2c upgrades (``upgrades``) behind the ASGI bridge, which
    serves WebSockets only: the bridge answers 501 rather than pretend."""
    loop = asyncio.get_running_loop()
    bridge = ASGIBridge(EchoApp(), loop)
    state = ServerState()
    limits = ServerLimits(upgrades=["websocket", "h2c"])
    server = await loop.create_server(
        lambda: ServerProtocol(bridge, state, loop, limits=limits), "127.0.0.1", 0
    )
    try:
        response = await roundtrip(
            server.sockets[0].getsockname()[1],
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        )
        assert response.status == 501
        assert "h2c" in response.json()["message"]  # type: ignore[index]
    finally:
        server.close()
        state.abort_all()
        await server.wait_closed()


async def test_close_websockets_on_shutdown(serve: Serve, app: EchoApp) -> None:
    loop = asyncio.get_running_loop()
    bridge = ASGIBridge(app, loop)
    state = ServerState()
    server = await loop.create_server(lambda: ServerProtocol(bridge, state, loop), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send("x")
            await ws.recv()
            bridge.close_websockets(1012, "restarting")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1012
        assert await wait_until(lambda: bool(app.disconnects))
        assert app.disconnects[0]["code"] == 1012
        await asyncio.wait_for(state.wait_closed(), 5)
        assert not bridge.tasks
    finally:
        server.close()
        state.abort_all()
        await server.wait_closed()
