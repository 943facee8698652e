"""The transport core as a candidate of ``shared/bench/client_bench.sh``.

    ../shared/bench/client_bench.sh --candidate benchmarks/client_transport.py:run \
        --candidate-name ferryman-transport

``run`` follows the harness's interface: n GETs of url, at most ``concurrency`` in flight,
each body read in full, the pool created and closed inside the call.
"""

from __future__ import annotations

import asyncio

from ferryman import URL, AsyncConnectionPool, Request


async def run(url: str, n: int, concurrency: int) -> int:
    target = URL(url)  # parsed once, as a client holding a base URL would
    remaining = n
    total = 0
    async with AsyncConnectionPool(max_connections_per_origin=concurrency) as pool:

        async def worker() -> None:
            nonlocal remaining, total
            while remaining > 0:
                remaining -= 1
                response = await pool.handle_async_request(Request("GET", target))
                body = await response.aread()
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                total += len(body)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    return total
