"""What a pool costs to open and close, beside what its requests cost.

    taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/pool_lifecycle.py [-c 64] [--reps 5]

The client harness times a whole ``run()``: the pool, its ``-c`` connections, the requests and
the pool's closing. At 50,000 requests/s, 5,000 requests take 100 ms, so a few milliseconds
spent opening or closing connections move the harness's figure by several percent. This prints,
per pool: the first ``-c`` concurrent requests (each opens a connection), the next ``-c`` (on
kept-alive connections) and ``aclose()``; then the same first step done with bare asyncio
protocols, the floor for opening ``-c`` connections and getting one answer on each.
(nginx from ``shared/bench`` must be serving on 127.0.0.1:18080.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop

from ferryman import URL, AsyncConnectionPool, Request

URL_SMALL = "http://127.0.0.1:18080/small"
REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"


class _Bare(asyncio.Protocol):
    def __init__(self, answered: asyncio.Future[None]) -> None:
        self.answered = answered

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(None)


async def bare(concurrency: int) -> float:
    loop = asyncio.get_running_loop()

    async def one() -> Any:
        answered: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: _Bare(answered), "127.0.0.1", 18080)
        transport.write(REQUEST)
        await answered
        return transport

    started = time.perf_counter()
    transports = await asyncio.gather(*(one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    for transport in transports:
        transport.close()
    await asyncio.sleep(0.01)
    return elapsed


async def pool_phases(concurrency: int) -> tuple[float, float, float]:
    target = URL(URL_SMALL)
    pool = AsyncConnectionPool(max_connections_per_origin=concurrency)

    async def one() -> None:
        response = await pool.handle_async_request(Request("GET", target))
        await response.aread()

    first = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    second = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    closing = time.perf_counter()
    await pool.aclose()
    done = time.perf_counter()
    return second - first, closing - second, done - closing


async def main(concurrency: int, reps: int) -> None:
    await pool_phases(concurrency)  # warm-up: imports, first allocations
    phases = [await pool_phases(concurrency) for _ in range(reps)]
    floors = [await bare(concurrency) for _ in range(reps)]
    ms = [1e3 * statistics.median(values) for values in zip(*phases, strict=True)]
    print(
        f"pool of {concurrency} (median of {reps}): first {concurrency} requests {ms[0]:.2f} ms,"
        f" next {concurrency} {ms[1]:.2f} ms, aclose {ms[2]:.2f} ms;"
        f" bare asyncio connect + one answer each {1e3 * statistics.median(floors):.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    uvloop.run(main(args.concurrency, args.reps))
