"""User and system CPU, sleeps and page faults per request of a client benchmark candidate.

    taskset -c 1 /tmp/ferryman-bench-venv/bin/python benchmarks/client_rusage.py \\
        benchmarks/client_transport.py:run 5000 1 [/small] [repeats]

The candidate follows ``shared/bench/client_bench.sh``'s ``run(url, n, concurrency)``
interface; nginx from ``shared/bench`` must serve on 127.0.0.1:18080. Each repeat makes an
untimed warm-up call of 200 requests, then a timed call of ``n``. Where the harness gives one
CPU figure, this splits it. A "sleep" is a voluntary context switch: the process found nothing
to read and waited, which is where 1 MiB downloads lose their time on a small VM.
"""

from __future__ import annotations

import importlib.util
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

MIB = 1 << 20


def load(spec: str) -> Callable[[str, int, int], Awaitable[Any]]:
    module_path, _, name = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("candidate", module_path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)  # type: ignore[no-any-return]


async def main(spec: str, n: int, concurrency: int, path: str, repeats: int) -> None:
    run = load(spec)
    url = "http://127.0.0.1:18080" + path
    for _ in range(repeats):
        await run(url, 200, concurrency)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        body_bytes = await run(url, n, concurrency)
        seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        per = 1e6 / n
        print(
            f"c={concurrency}: {n / seconds:,.0f} req/s, "
            f"{(body_bytes or 0) / 1e6 / seconds:,.0f} MB/s; per request: "
            f"user {(after.ru_utime - before.ru_utime) * per:.1f} µs, "
            f"system {(after.ru_stime - before.ru_stime) * per:.1f} µs, "
            f"{(after.ru_nvcsw - before.ru_nvcsw) / n:.2f} sleeps, "
            f"{(after.ru_minflt - before.ru_minflt) / n:.1f} page faults"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    uvloop.run(
        main(
            args[0],
            int(args[1]),
            int(args[2]),
            args[3] if len(args) > 3 else "/small",
            int(args[4]) if len(args) > 4 else 3,
        )
    )
