"""The fast relay alone, without a system: ``python benchmarks/proxy_relay.py PORT UPSTREAM``.

What ``ferryman start`` serves on an endpoint's port when nothing listens to events, minus the
system around it; comparing the two with ``../shared/bench/proxy_bench.sh`` shows what the
system costs. Runs on uvloop when it is installed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys

from ferryman.http.url import URL
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.upstream import UpstreamPool
from ferryman.server.protocol import ServerProtocol, ServerState


async def serve(port: int, upstream: str) -> None:
    loop = asyncio.get_running_loop()
    relay = EndpointRelay("bench", [UpstreamPool(URL(upstream), loop)])
    state = ServerState()
    server = await loop.create_server(
        lambda: ServerProtocol(relay, state, loop), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    if os.environ.get("FERRYMAN_GC_THRESHOLD"):
        gc.set_threshold(int(os.environ["FERRYMAN_GC_THRESHOLD"]))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port, upstream))
    else:
        uvloop.run(serve(port, upstream))


if __name__ == "__main__":
    main()
