"""Fixtures for the proxy tests: uvicorn serving a proxy in the test's own event loop, clients,
a port that refuses connections, a WebSocket echo server.

The proxy runs in the test's loop (not a thread) so that the handlers' http clients, built and
closed by the test or the system, live on the loop that uses them; the upstreams (edge, httpbin,
the uvicorn test app, the WebSocket echo) run in threads of their own, as elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvicorn

import ferryman
from tests.server.helpers import ASGICall
from tests.servers.relay_harness import StartRelay, relay_starter
from tests.servers.slow_upstream import ScriptedUpstream
from tests.servers.ws_echo import WsEchoServer


class ProxyUnderTest:
    """uvicorn (httptools, wsproto, lifespan on) serving ``app`` on 127.0.0.1 in this loop."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For and add its
        # own Server and Date headers: the tests look at what the proxy does.
        config = uvicorn.Config(
            app,
            http="httptools",
            ws="wsproto",
            lifespan="on",
            log_level="warning",
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> ProxyUnderTest:
        self._task = asyncio.create_task(self._server._serve(sockets=[self._sock]))
        for _ in range(1000):
            if self._server.started:
                return self
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start within 10 s")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
        self._sock.close()


Serve = Callable[[Any], Awaitable[ProxyUnderTest]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start uvicorn for an ASGI app in this loop; stopped (lifespan shutdown) after the test."""
    servers: list[ProxyUnderTest] = []

    async def start(app: Any) -> ProxyUnderTest:
        server = await ProxyUnderTest(app).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def refused_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def ws_echo() -> Iterator[WsEchoServer]:
    server = WsEchoServer().start()
    yield server
    server.stop()


class LiveCall(ASGICall):
    """A hand-driven ASGI call whose client stays connected: once the request messages are
    read, ``receive`` waits (as a server's does) until ``disconnect()``."""

    def __init__(self, incoming: list[Any] | None = None) -> None:
        super().__init__(incoming)
        self._gone = asyncio.Event()

    async def receive(self) -> Any:
        if not self.incoming:
            await self._gone.wait()
        return await super().receive()

    def disconnect(self) -> None:
        self._gone.set()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    """The scripted upstream the relay tests send to (one per test module)."""
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    async for start in relay_starter():
        yield start
