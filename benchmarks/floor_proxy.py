"""Calibration: the leanest keep-alive reverse proxy this machine allows, to tell how far issue
4's targets are from what one Python core can do at all.

It is not a proxy: no events, no errors, no timeouts, no chunked bodies, no header rules;
GETs only, Content-Length answers only. Each side is an ``asyncio.Protocol`` with httptools;
a finished upstream connection goes back on an idle list. It does the header work a correct
proxy cannot skip (hop-by-hop lines dropped both ways, ``Host`` set, ``X-Forwarded-For``
added), so its CPU per request is the floor that ferryman's fast relay is measured against:

    (setsid taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/floor_proxy.py \\
        18091 http://127.0.0.1:18080 &)
    benchmarks/proxy_cpu_split.sh $(pgrep -f floor_proxy.py) http://127.0.0.1:18091/small

or as the harness's candidate:

    ../shared/bench/proxy_bench.sh --targets aiohttp --candidate-port 18091 --candidate \\
        '/tmp/ferryman-bench-venv/bin/python benchmarks/floor_proxy.py {port} {upstream}'
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from urllib.parse import urlsplit

import httptools
import uvloop

HOP_BY_HOP = frozenset(
    b"connection keep-alive te trailer transfer-encoding upgrade proxy-connection host".split()
)


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream; answers go to whichever client it serves."""

    def __init__(self, pool: deque[Upstream]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None
        self.head: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.head = [b"HTTP/1.1 200 OK\r\n"]

    def on_status(self, status: bytes) -> None:
        self.head[0] = b"HTTP/1.1 %d %s\r\n" % (self.parser.get_status_code(), status)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self.head.append(b"\r\n")
        self.client.transport.write(b"".join(self.head))  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self.client.transport.write(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        self.client = None
        self.pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)


class Client(asyncio.Protocol):
    """One downstream connection; each request is written to an idle upstream connection."""

    def __init__(self, upstream: tuple[str, int], pool: deque[Upstream]) -> None:
        self.upstream, self.pool = upstream, pool
        self.parser = httptools.HttpRequestParser(self)
        self.head: list[bytes] = []
        self.url = b""
        self.transport: asyncio.Transport | None = None
        self.peer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")[0].encode()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.head = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_message_complete(self) -> None:
        host, port = self.upstream
        head = b"%s %s HTTP/1.1\r\nHost: %s:%d\r\n%sX-Forwarded-For: %s\r\n\r\n" % (
            self.parser.get_method(),
            self.url,
            host.encode(),
            port,
            b"".join(self.head),
            self.peer,
        )
        if self.pool:
            upstream = self.pool.pop()
            upstream.client = self
            upstream.transport.write(head)  # type: ignore[union-attr]
        else:
            asyncio.get_running_loop().create_task(self.connect(head))

    async def connect(self, head: bytes) -> None:
        _, upstream = await asyncio.get_running_loop().create_connection(
            lambda: Upstream(self.pool), *self.upstream
        )
        upstream.client = self
        upstream.transport.write(head)  # type: ignore[union-attr]


async def serve(port: int, upstream_url: str) -> None:
    split = urlsplit(upstream_url)
    upstream = (split.hostname or "127.0.0.1", split.port or 80)
    pool: deque[Upstream] = deque()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream, pool), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
