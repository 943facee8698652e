"""Calibration: the leanest keep-alive client this machine allows, to tell how far a target is
from what the kernel and the upstream permit at all.

It is not a client: no request or response objects, no pool, no error handling; one
``asyncio.BufferedProtocol`` per connection, httptools for the small responses and a straight
copy of a 1 MiB body into ``bytes``. Compare its figures with the harness's in the same session:

    taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/floor_client.py small 5000 1
    taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/floor_client.py small 20000 64
    taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/floor_client.py 1m 300 1

(nginx from ``shared/bench`` must be serving on 127.0.0.1:18080, pinned to CPU 0.)

``run`` follows the client harness's interface, so the floor can stand in the harness's own
table next to aiohttp, measured the way the candidates are (connections opened and closed
inside the timed call):

    ../shared/bench/client_bench.sh --clients aiohttp \
        --candidate benchmarks/floor_client.py:run --candidate-name floor
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop

HOST, PORT = "127.0.0.1", 18080
MIB = 1 << 20


class SmallGet(asyncio.Protocol):
    request = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"

    def __init__(self, request: bytes | None = None) -> None:
        if request is not None:
            self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.waiter is not None
        self.waiter.set_result(len(b"".join(self.body)))
        self.body = []


class LargeGet(asyncio.BufferedProtocol):
    request = b"GET /1m HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"

    def __init__(self, request: bytes | None = None) -> None:
        if request is not None:
            self.request = request
        self.buffer = bytearray(MIB + 4096)
        self.view = memoryview(self.buffer)
        self.filled = 0
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        end = self.buffer.find(b"\r\n\r\n", 0, 512) + 4
        if end > 3 and self.filled - end >= MIB:
            body = bytes(self.view[end : end + MIB])
            self.filled = 0
            assert self.waiter is not None
            self.waiter.set_result(len(body))


async def main(kind: str, n: int, concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    factory = SmallGet if kind == "small" else LargeGet
    conns = [(await loop.create_connection(factory, HOST, PORT))[1] for _ in range(concurrency)]
    remaining = 0

    async def worker(conn: Any) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            conn.waiter = loop.create_future()
            conn.transport.write(conn.request)
            await conn.waiter

    remaining = min(n, 200)
    await asyncio.gather(*(worker(c) for c in conns))
    remaining = n
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    rate = f"{n / seconds:.0f} req/s" if kind == "small" else f"{n * MIB / 1e6 / seconds:.0f} MB/s"
    print(
        f"floor {kind} c={concurrency}: {rate}, {1e6 * (user + system) / n:.1f} CPU us/req"
        f" (user {1e6 * user / n:.1f}, system {1e6 * system / n:.1f};"
        f" {(r1.ru_nvcsw - r0.ru_nvcsw) / n:.2f} sleeps/req)"
    )


async def run(url: str, n: int, concurrency: int) -> int:
    """The harness's interface: ``n`` GETs of ``url`` (``/1m`` is read as a 1 MiB body),
    ``concurrency`` connections; returns the body bytes read."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 80
    request = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
        (parts.path or "/").encode(),
        parts.netloc.encode(),
    )
    factory = LargeGet if parts.path == "/1m" else SmallGet
    conns = [
        (await loop.create_connection(lambda: factory(request), host, port))[1]
        for _ in range(max(1, min(concurrency, n)))
    ]
    remaining, total = n, 0

    async def worker(conn: Any) -> None:
        nonlocal remaining, total
        while remaining > 0:
            remaining -= 1
            conn.waiter = loop.create_future()
            conn.transport.write(conn.request)
            size = await conn.waiter  # (``total += await`` would read total before waiting)
            total += size

    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        conn.transport.close()
    return total


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
