"""WebSockets through a ProxyServer when the fast path is off (an event listener is attached):
the endpoint relay hands the upgrade to the ASGI bridge, whose ``websocket`` scope reaches the
endpoint's HTTPProxyHandler through the kernel."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from ferryman.events import Event
from ferryman.proxy.application import build_kernel
from ferryman.proxy.server import ProxyServer
from ferryman.server import EVENT_CORE_REQUEST
from ferryman.system import SystemBuilder, load_config
from tests.servers.ws_echo import CLOSE_4001_REASON, WsEchoServer


@pytest.fixture(params=[True, False], ids=["listener", "fast"])
async def proxy(
    request: pytest.FixtureRequest, ws_echo: WsEchoServer
) -> AsyncIterator[ProxyServer]:
    """A proxy with an endpoint on its own port and one under /ws of the kernel port, both to
    the echo server; with a core.request listener (the slow path) or without (the fast path)."""
    upstream = ws_echo.url.replace("ws://", "http://")
    config = load_config(
        [],
        overrides=[
            "proxy.port=0",
            "proxy.endpoints.0.name=echo",
            "proxy.endpoints.0.port=0",
            f"proxy.endpoints.0.url={upstream}",
            "proxy.endpoints.1.name=prefixed",
            "proxy.endpoints.1.path=/ws",
            f"proxy.endpoints.1.url={upstream}",
            "proxy.endpoints.1.rewrite.from=/ws",
            "proxy.endpoints.1.rewrite.to=/",
        ],
    )
    system = await SystemBuilder(config).build(build_kernel)
    if request.param:
        system.dispatcher.add_listener(EVENT_CORE_REQUEST, lambda event: None)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(1)
        await system.dispose()


def slow_path(proxy: ProxyServer) -> bool:
    return proxy.system.dispatcher.has_listeners(EVENT_CORE_REQUEST)


def endpoint_url(proxy: ProxyServer, name: str) -> str:
    host, port = proxy.addresses[name]
    return f"ws://{host}:{port}"


def seen_key(ws_echo: WsEchoServer) -> str:
    """The Sec-WebSocket-Key of the handshake the echo server saw last."""
    headers: dict[str, str] = {}
    try:
        while True:
            headers = ws_echo.request_headers.get(timeout=5 if not headers else 0)
    except queue.Empty:
        pass
    return headers["sec-websocket-key"]


def client_key(ws: ClientConnection) -> str:
    assert ws.request is not None
    return ws.request.headers["Sec-WebSocket-Key"]


async def test_messages_are_echoed_through_the_endpoint_port(
    proxy: ProxyServer, ws_echo: WsEchoServer
) -> None:
    async with connect(f"{endpoint_url(proxy, 'echo')}/echo", max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        big = "x" * 1_000_000
        await ws.send(big)
        assert await ws.recv() == big
    # The slow path opens its own handshake upstream; the fast path tunnels the client's.
    assert (seen_key(ws_echo) != client_key(ws)) is slow_path(proxy)


async def test_path_prefix_endpoint_on_the_kernel_port(
    proxy: ProxyServer, ws_echo: WsEchoServer
) -> None:
    async with connect(f"{endpoint_url(proxy, 'kernel')}/ws/echo") as ws:
        await ws.send("through the prefix")
        assert await ws.recv() == "through the prefix"
    assert (seen_key(ws_echo) != client_key(ws)) is slow_path(proxy)


async def test_subprotocol_and_close_codes(proxy: ProxyServer, ws_echo: WsEchoServer) -> None:
    base = endpoint_url(proxy, "echo")
    async with connect(f"{base}/subprotocol", subprotocols=[Subprotocol("chat.v1")]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert await ws.recv() == "chat.v1"
    async with connect(f"{base}/close-4001") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == CLOSE_4001_REASON
    async with connect(f"{base}/echo") as ws:
        await ws.send("x")
        await ws.recv()
        await ws.close(4003, "client done")
    # The echo server records closes from its own thread, earlier connections' (this test's,
    # other tests') possibly after this one started: look for this one's among them.
    # The proxy runs in this test's event loop, and the echo server records a close only once
    # the proxy has closed its upstream TCP connection, which happens after the client's
    # closing handshake (the proxy answers that one itself): the wait must leave the loop free.
    seen = []
    for _ in range(10):
        try:
            path, code, _ = await asyncio.to_thread(ws_echo.closes.get, timeout=5)
        except queue.Empty:
            raise AssertionError(seen) from None
        seen.append((path, code))
        if (path, code) == ("/echo", 4003):
            break
    assert seen[-1] == ("/echo", 4003), seen


async def test_no_listener_sees_a_websocket_as_a_request(proxy: ProxyServer) -> None:
    """The kernel dispatches no event for a websocket scope: a listener that would refuse every
    request does not stop WebSockets."""
    heard: list[Event] = []
    proxy.system.dispatcher.add_listener(EVENT_CORE_REQUEST, heard.append)
    async with connect(f"{endpoint_url(proxy, 'echo')}/echo") as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"
    assert heard == []
