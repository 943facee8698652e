"""The fast relay's own CPU per request, without sockets.

    python benchmarks/relay_cpu.py [N] [api] [observer] [middleware] [ratelimit] [cache | hit]
        [resilience]

A request the way wrk sends it goes into a :class:`ServerProtocol`; the answer nginx gives
(the harness's 213-byte ``/small``, with nginx's eight headers) goes into the
:class:`UpstreamConnection` it was relayed to; with ``api``, an answer with the 28 headers of a
GitHub API answer (a 1 KiB head, as third-party APIs send). Both transports are stand-ins that
drop what is written, so what is timed is the Python (and httptools) work of one relayed
request: the part of the proxy's per-request cost that code changes move, measured without the
loopback's noise. The syscalls it leaves out cost about as much again (see the notes on
issue 4). ``cache``: the endpoint has the default HTTP cache (in memory) and the answer says
nothing about caching (the default configuration's cost); ``hit``: the answer says
``max-age=999999999`` (its Date is in the past), so every request after the first is a hit,
which touches no upstream.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from ferryman import _compiled
from ferryman.client.cache import MemoryStore
from ferryman.events import EventDispatcher
from ferryman.http.caching import CachePolicy
from ferryman.http.url import URL
from ferryman.proxy import HTTPProxyHandler, ProxyContext
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.relay_cache import RelayCache
from ferryman.proxy.relay_middleware import RelayHooks
from ferryman.proxy.relay_resilience import build_resilience
from ferryman.proxy.settings import EndpointSettings
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED, TransactionListeners
from ferryman.proxy.upstream import UpstreamConnection, UpstreamPool
from ferryman.server.protocol import ServerProtocol, ServerState

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18090\r\n\r\n"
BODY = b'{"id":4711,"object":"chat.completion"' + b"x" * 174 + b"}"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx\r\n"
    b"Date: Sat, 21 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Last-Modified: Sat, 21 Nov 2026 09:00:00 GMT\r\n"
    b"Connection: keep-alive\r\n"
    b'ETag: "655f1c00-d5"\r\n'
    b"Accept-Ranges: bytes\r\n\r\n" % len(BODY)
) + BODY

API_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: GitHub.com\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Cache-Control: private, max-age=60, s-maxage=60\r\n"
    b'Vary: Accept, Authorization, Cookie, X-GitHub-OTP\r\nETag: W/"9a5b1c"\r\n'
    b"Last-Modified: Fri, 20 Nov 2026 09:00:00 GMT\r\nX-OAuth-Scopes: repo\r\n"
    b"X-Accepted-OAuth-Scopes: \r\nX-GitHub-Media-Type: github.v3; format=json\r\n"
    b"x-github-api-version-selected: 2022-11-28\r\nX-RateLimit-Limit: 5000\r\n"
    b"X-RateLimit-Remaining: 4999\r\nX-RateLimit-Reset: 1763722800\r\n"
    b"X-RateLimit-Used: 1\r\nX-RateLimit-Resource: core\r\n"
    b"Access-Control-Expose-Headers: ETag, Link, Location, Retry-After\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"Strict-Transport-Security: max-age=31536000; includeSubdomains; preload\r\n"
    b"X-Frame-Options: deny\r\nX-Content-Type-Options: nosniff\r\nX-XSS-Protection: 0\r\n"
    b"Referrer-Policy: origin-when-cross-origin, strict-origin-when-cross-origin\r\n"
    b"Content-Security-Policy: default-src 'none'\r\nContent-Length: %d\r\n"
    b"X-GitHub-Request-Id: C0DE:1234:5678:9ABC:DEF0\r\nConnection: keep-alive\r\n\r\n" % len(BODY)
) + BODY


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's, when installed, as the proxy's (the loop only tells the time here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class NullTransport:
    """Takes writes and drops them; says its buffer is empty."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += len(chunk)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name in ("peername", "sockname") else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool:
        return False


def _through(ctx: Any) -> Any:
    yield


def run(
    n: int,
    response: bytes = RESPONSE,
    observer: bool = False,
    middleware: bool = False,
    ratelimit: bool = False,
    cache: str = "",
    resilience: bool = False,
) -> float:
    """Relay ``n`` requests answered with ``response``; return the seconds it took. With
    ``observer``, one no-op ``proxy.transaction.finished`` listener sees every request; with
    ``middleware``, one no-op generator middleware (run inline by the relay); with
    ``resilience``, what ``ferryman start`` attaches to every endpoint by default (the
    balancer, a circuit breaker, the retry policy: ``relay_resilience``)."""
    loop = new_event_loop()
    pool = UpstreamPool(URL("http://127.0.0.1:18080"), loop)
    upstream = UpstreamConnection(pool)
    upstream.connection_made(NullTransport(("127.0.0.1", 18080)))  # type: ignore[arg-type]
    pool._idle.append(upstream)
    dispatcher = EventDispatcher()
    if observer:
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, lambda transaction: None)
    relay = EndpointRelay("bench", [pool], transactions=TransactionListeners(dispatcher))
    if resilience:
        settings = EndpointSettings(name="bench", port=0, url=["http://127.0.0.1:18080"])
        relay.resilience = build_resilience(settings, [pool], dispatcher, loop)
    if middleware:
        handler = HTTPProxyHandler(ProxyContext("http://127.0.0.1:18080"), name="bench")
        handler.client_edge(_through)
        relay.use_fast = lambda: False
        relay.filters = RelayHooks("bench", dispatcher, handler, lambda: True)
    if ratelimit:
        from ferryman.apps.ratelimit.limiter import EndpointLimiter, LimitCounters
        from ferryman.apps.ratelimit.settings import EndpointLimitSettings

        limit = EndpointLimitSettings(requests=1e9)
        relay.admission = EndpointLimiter("bench", limit, LimitCounters())
    if cache:
        relay.cache = RelayCache("bench", MemoryStore(), CachePolicy(), 8 * 1024 * 1024)
        if cache == "hit":
            fresh = b"\r\nCache-Control: max-age=999999999\r\n\r\n"
            response = response.replace(b"\r\n\r\n", fresh, 1)
    client = ServerProtocol(relay, ServerState(), loop)
    client_transport = NullTransport(("127.0.0.1", 50000))
    client.connection_made(client_transport)  # type: ignore[arg-type]
    buffer = upstream.get_buffer(-1)
    size = len(response)
    started = time.perf_counter()
    for index in range(n):
        client.data_received(REQUEST)
        if cache == "hit" and index:
            continue  # (answered from the cache: no upstream read)
        buffer = upstream.get_buffer(-1)
        buffer[:size] = response
        upstream.buffer_updated(size)
    elapsed = time.perf_counter() - started
    if client_transport.written < n * (len(BODY) + 100):  # every answer went out, whole
        raise SystemExit(f"only {client_transport.written} bytes answered: the relay failed")
    loop.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    api = "api" in sys.argv[2:]
    observer = "observer" in sys.argv[2:]
    middleware = "middleware" in sys.argv[2:]
    ratelimit = "ratelimit" in sys.argv[2:]
    cache = "hit" if "hit" in sys.argv[2:] else "cache" if "cache" in sys.argv[2:] else ""
    resilience = "resilience" in sys.argv[2:]
    response = API_RESPONSE if api else RESPONSE
    options = (observer, middleware, ratelimit, cache, resilience)
    run(n // 10, response, *options)  # warm up
    best = min(run(n, response, *options) for _ in range(5))
    head = "28-header API" if api else "nginx's 8-header"
    print(
        f"{1e6 * best / n:.2f} µs per relayed request, {head} answer (best of 5 x {n})"
        f"{', one no-op transaction observer' if observer else ''}"
        f"{', an in-memory rate limit' if ratelimit else ''}"
        f"{', cache on (nothing cacheable)' if cache == 'cache' else ''}"
        f"{', cache hits' if cache == 'hit' else ''}"
        f"{', default breaker and retries' if resilience else ''}; hot path {_compiled.mode}"
    )


if __name__ == "__main__":
    main()
