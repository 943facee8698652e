"""A fast relay (:class:`~ferryman.proxy.relay.EndpointRelay`) on ferryman's own server, with no
system around it, for tests that drive it with raw bytes: ``start_relay(url, ...)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ferryman.http.url import URL
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.upstream import UpstreamPool
from ferryman.server.protocol import DEFAULT_LIMITS, ServerLimits, ServerProtocol, ServerState
from tests.servers.slow_upstream import RawResponse, roundtrip

__all__ = ["RelayServer", "StartRelay", "relay_starter"]


@dataclass
class RelayServer:
    port: int
    relay: EndpointRelay
    state: ServerState
    server: asyncio.Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, target: bytes, headers: bytes = b"", **options: Any) -> RawResponse:
        return await roundtrip(
            self.port,
            b"GET %s HTTP/1.1\r\nHost: proxy.test\r\n%s\r\n" % (target, headers),
            **options,
        )


StartRelay = Callable[..., Awaitable[RelayServer]]


async def relay_starter() -> AsyncIterator[StartRelay]:
    """``await start_relay(url, *more_urls, max_connections=..., limits=ServerLimits(...),
    **EndpointRelay options)``;
    every relay started is stopped at the end."""
    loop = asyncio.get_running_loop()
    started: list[RelayServer] = []

    async def start(
        *urls: str,
        max_connections: int = 512,
        limits: ServerLimits = DEFAULT_LIMITS,
        **options: Any,
    ) -> RelayServer:
        pools = [UpstreamPool(URL(url), loop, max_connections=max_connections) for url in urls]
        relay = EndpointRelay("test", pools, **options)
        state = ServerState()
        server = await loop.create_server(
            lambda: ServerProtocol(relay, state, loop, limits=limits), "127.0.0.1", 0
        )
        served = RelayServer(server.sockets[0].getsockname()[1], relay, state, server)
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.close()
        served.state.abort_all()
        served.relay.close()
        await served.server.wait_closed()
