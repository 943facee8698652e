"""WebSocket relaying: a ``websockets`` client, the handler under uvicorn, the echo upstream."""

from __future__ import annotations

import asyncio
import queue

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ferryman.events import EventDispatcher
from ferryman.proxy import HTTPProxyHandler, ProxyContext, ProxyEndpoints, build_kernel
from ferryman.proxy.resolver import EndpointResolver
from ferryman.server import ASGIKernel
from ferryman.system import SystemBuilder
from tests.proxy.conftest import ProxyUnderTest, Serve
from tests.servers.ws_echo import CLOSE_4001_REASON, WsEchoServer


def http_url(ws: WsEchoServer) -> str:
    return ws.url.replace("ws://", "http://")


def drain(q: queue.Queue[object]) -> None:
    while not q.empty():
        q.get_nowait()


@pytest.fixture
async def proxy(serve: Serve, ws_echo: WsEchoServer) -> ProxyUnderTest:
    return await serve(HTTPProxyHandler(ProxyContext(url=http_url(ws_echo))))


async def test_messages_go_both_ways(proxy: ProxyUnderTest) -> None:
    async with connect(f"{proxy.ws_url}/echo") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        big = "x" * 1_000_000
        await ws.send(big)
        assert await ws.recv() == big


async def test_the_handshake_carries_forwarding_headers_and_subprotocols(
    proxy: ProxyUnderTest, ws_echo: WsEchoServer
) -> None:
    drain(ws_echo.request_headers)  # type: ignore[arg-type]
    async with connect(
        f"{proxy.ws_url}/subprotocol", subprotocols=["chat.v1"], additional_headers={"X-Mine": "1"}
    ) as ws:
        assert ws.subprotocol == "chat.v1"
        assert await ws.recv() == "chat.v1"
    seen = ws_echo.request_headers.get(timeout=5)
    assert seen["x-mine"] == "1"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["via"] == "1.1 ferryman"
    assert seen["host"] == http_url(ws_echo).removeprefix("http://")


async def test_close_codes_pass_through_both_ways(
    proxy: ProxyUnderTest, ws_echo: WsEchoServer
) -> None:
    async with connect(f"{proxy.ws_url}/close-4001") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, CLOSE_4001_REASON)

    async with connect(f"{proxy.ws_url}/echo?closing=1") as ws:
        await ws.send("bye")
        assert await ws.recv() == "bye"
        await ws.close(4321, "client leaves")
    codes = []
    while 4321 not in codes:  # other tests' connections close on the same server
        path, code, _ = await asyncio.to_thread(ws_echo.closes.get, timeout=5)
        codes.append(code if path == "/echo" else None)


async def test_an_upstream_refusal_refuses_the_client(proxy: ProxyUnderTest) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{proxy.ws_url}/forbidden"):
            pass
    assert refused.value.response.status_code == 403


async def test_a_refused_upstream_refuses_the_client(serve: Serve, refused_url: str) -> None:
    proxy = await serve(HTTPProxyHandler(ProxyContext(url=refused_url)))
    with pytest.raises(InvalidStatus):
        async with connect(f"{proxy.ws_url}/echo"):
            pass


async def test_the_kernel_routes_websockets_to_the_handler(
    serve: Serve, ws_echo: WsEchoServer
) -> None:
    handler = HTTPProxyHandler(ProxyContext(url=http_url(ws_echo)))
    kernel = ASGIKernel(EventDispatcher(), EndpointResolver(by_path={"/ws": handler}))
    proxy = await serve(kernel)
    try:
        async with connect(f"{proxy.ws_url}/ws/echo") as ws:
            await ws.send("through the kernel")
            assert await ws.recv() == "through the kernel"
    finally:
        await handler.aclose()


async def test_a_configured_endpoint_relays_websockets(serve: Serve, ws_echo: WsEchoServer) -> None:
    config = {
        "applications": ["proxy"],
        "proxy": {"endpoints": [{"name": "ws", "path": "/live", "url": http_url(ws_echo)}]},
    }
    system = await SystemBuilder(config).build(build_kernel)
    try:
        assert "ws" in system.provider.resolve(ProxyEndpoints)
        proxy = await serve(system.asgi_app)
        async with connect(f"{proxy.ws_url}/live/echo") as ws:
            await ws.send("configured")
            assert await ws.recv() == "configured"
    finally:
        await system.dispose()
