"""What recording costs the proxy's process per request, without sockets or a database.

    python benchmarks/storage_cpu.py [N] [api]

:mod:`relay_cpu`'s harness (a request into a :class:`ServerProtocol`, nginx's answer into the
:class:`UpstreamConnection`, transports that drop what is written) relays ``N`` requests six
ways, interleaved, best of 5 each: with nothing listening; with one no-op finished listener;
with the access log (its thread writing to ``/dev/null``); with the metrics' counting; with
storage's listeners (:class:`Storage`'s ``on_started`` and ``on_finished``, bodies recorded,
every 500 records marshalled in one call and written to ``/dev/null`` as the flusher writes
them to the writer's pipe); and with all three (``ferryman start``'s defaults). The
difference from the first is what each costs the proxy's process, Python and syscalls of the
flushes included; what the loopback and the loop add is left out (``storage_bench.py``'s
discard case has them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from relay_cpu import API_RESPONSE, BODY, REQUEST, RESPONSE, NullTransport, new_event_loop

from ferryman import _compiled
from ferryman.apps.accesslog import AccessLog, LoggingSettings
from ferryman.apps.metrics.counters import TransactionCounters
from ferryman.apps.storage.channel import encode
from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.settings import StorageSettings
from ferryman.events import EventDispatcher
from ferryman.http.url import URL
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.transactions import (
    EVENT_TRANSACTION_FINISHED,
    EVENT_TRANSACTION_STARTED,
    TransactionListeners,
)
from ferryman.proxy.upstream import UpstreamConnection, UpstreamPool
from ferryman.server.protocol import ServerProtocol, ServerState

BATCH = 500


def run(n: int, response: bytes, mode: str) -> float:
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    # The listeners ask for the running loop (the access log's timed flush), as in a server.
    asyncio.events._set_running_loop(loop)
    pool = UpstreamPool(URL("http://127.0.0.1:18080"), loop)
    upstream = UpstreamConnection(pool)
    upstream.connection_made(NullTransport(("127.0.0.1", 18080)))  # type: ignore[arg-type]
    pool._idle.append(upstream)
    dispatcher = EventDispatcher()
    storage = Storage(StorageSettings(url="sqlite:////nonexistent/x.db", queue_size=BATCH * 2))
    sink = os.open(os.devnull, os.O_WRONLY)
    queue = storage._queue
    if mode == "observer":
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, lambda transaction: None)
    access_log = None
    if mode in ("accesslog", "defaults"):
        access_log = AccessLog(LoggingSettings(access_log=os.devnull))
        access_log.writer.open()  # its thread writes to /dev/null, as it would to a file
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, access_log.on_finished)
    if mode in ("metrics", "defaults"):
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, TransactionCounters().on_finished)
    if mode in ("storage", "defaults"):
        dispatcher.add_listener(EVENT_TRANSACTION_STARTED, storage.on_started)
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, storage.on_finished)
    relay = EndpointRelay("bench", [pool], transactions=TransactionListeners(dispatcher))
    client = ServerProtocol(relay, ServerState(), loop)
    client_transport = NullTransport(("127.0.0.1", 50000))
    client.connection_made(client_transport)  # type: ignore[arg-type]
    size = len(response)
    started = time.perf_counter()
    for _ in range(n):
        client.data_received(REQUEST)
        buffer = upstream.get_buffer(-1)
        buffer[:size] = response
        upstream.buffer_updated(size)
        if len(queue) >= BATCH:  # the flusher's work, as it does it
            batch = list(queue)
            queue.clear()
            head, body = encode(batch)
            os.write(sink, head)
            os.write(sink, body)
    elapsed = time.perf_counter() - started
    if access_log is not None:
        access_log.writer.close()
    os.close(sink)
    if client_transport.written < n * (len(BODY) + 100):
        raise SystemExit(f"only {client_transport.written} bytes answered: the relay failed")
    if mode in ("storage", "defaults") and storage.dropped:
        raise SystemExit(f"{storage.dropped} dropped: the harness did not flush")
    asyncio.events._set_running_loop(None)
    loop.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    response = API_RESPONSE if "api" in sys.argv[2:] else RESPONSE
    modes = ("none", "observer", "accesslog", "metrics", "storage", "defaults")
    best = dict.fromkeys(modes, float("inf"))
    for mode in modes:
        run(n // 10, response, mode)  # warm up
    for _ in range(5):
        for mode in modes:
            best[mode] = min(best[mode], run(n, response, mode))
    print(f"µs per relayed request (best of 5 x {n}, interleaved); hot path {_compiled.mode}")
    for mode in modes:
        extra = 1e6 * (best[mode] - best["none"]) / n
        print(f"  {mode:<10}{1e6 * best[mode] / n:7.2f}   {extra:+6.2f}")


if __name__ == "__main__":
    main()
