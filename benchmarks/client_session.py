"""``AsyncClient`` with its defaults as a candidate of ``shared/bench/client_bench.sh``.

    ../shared/bench/client_bench.sh --candidate benchmarks/client_session.py:run \
        --candidate-name ferryman

Defaults on: cookies stored, redirects followed, decompression, events (none bound), the
default timeouts. Each call passes the URL as a string, as application code does.
"""

from __future__ import annotations

import asyncio

from ferryman import AsyncClient


async def run(url: str, n: int, concurrency: int) -> int:
    remaining = n
    total = 0
    async with AsyncClient(pool_size=concurrency) as client:

        async def worker() -> None:
            nonlocal remaining, total
            while remaining > 0:
                remaining -= 1
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                total += len(response.content)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    return total
