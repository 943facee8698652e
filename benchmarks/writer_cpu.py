"""What the storage writer spends on one record, without the proxy: rows built, and stored.

    python benchmarks/writer_cpu.py [N] [sqlite] [postgresql]

Records are what the proxy ships (``Transaction.record()`` of requests relayed by
:mod:`relay_cpu`'s harness, each with its own times and body, as in real traffic), ``N`` of
them in batches of 500. Prints the writer's CPU per record for
:func:`~ferryman.apps.storage.rows.build_batch` alone, then with each database named (a fresh
SQLite file; a PostgreSQL database on 127.0.0.1, created and dropped): process CPU time, so a
database server's own work is not in it (``storage_bench.py`` has the whole).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import uuid
from typing import Any

from relay_cpu import REQUEST, RESPONSE, NullTransport, new_event_loop

from ferryman.apps.storage.database import insert_statements, write_batch
from ferryman.apps.storage.migrate import create_engine, migrate
from ferryman.apps.storage.rows import build_batch
from ferryman.apps.storage.settings import StorageSettings
from ferryman.events import EventDispatcher
from ferryman.http.url import URL
from ferryman.proxy.relay import EndpointRelay
from ferryman.proxy.transactions import (
    EVENT_TRANSACTION_FINISHED,
    EVENT_TRANSACTION_STARTED,
    Transaction,
    TransactionListeners,
)
from ferryman.proxy.upstream import UpstreamConnection, UpstreamPool
from ferryman.server.protocol import ServerProtocol, ServerState

BATCH = 500
#: What ``ferryman start`` redacts by default.
SECRET_HEADERS = StorageSettings().header_names
JSON_KEYS = StorageSettings().json_keys


def records(n: int) -> list[tuple[Any, ...]]:
    """``n`` records of relayed requests, bodies kept (each its own)."""
    loop = new_event_loop()
    pool = UpstreamPool(URL("http://127.0.0.1:18080"), loop)
    upstream = UpstreamConnection(pool)
    upstream.connection_made(NullTransport(("127.0.0.1", 18080)))  # type: ignore[arg-type]
    pool._idle.append(upstream)
    finished: list[Transaction] = []
    dispatcher = EventDispatcher()
    dispatcher.add_listener(EVENT_TRANSACTION_STARTED, lambda t: t.record_bodies(65536))
    dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, finished.append)
    relay = EndpointRelay("bench", [pool], transactions=TransactionListeners(dispatcher))
    client = ServerProtocol(relay, ServerState(), loop)
    client.connection_made(NullTransport(("127.0.0.1", 50000)))  # type: ignore[arg-type]
    for index in range(n):
        client.data_received(REQUEST)
        # Each answer its own body (an API's answers differ: no deduplication helps).
        body = b'{"id":%d,"object":"chat.completion"' % index
        head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % (len(body) + 1), RESPONSE)
        answer = head[: head.index(b"\r\n\r\n") + 4] + body + b"}"
        buffer = upstream.get_buffer(-1)
        buffer[: len(answer)] = answer
        upstream.buffer_updated(len(answer))
    loop.close()
    return [transaction.record() for transaction in finished]


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def store(url: str, batches: list[list[tuple[Any, ...]]]) -> float:
    engine = create_engine(url, timeout=10.0)
    await migrate(engine, url)
    statements = insert_statements(engine.dialect.paramstyle)
    started = cpu()
    for taken in batches:
        await write_batch(engine, statements, build_batch(taken, SECRET_HEADERS, JSON_KEYS))
    spent = cpu() - started
    await engine.dispose()
    return spent


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    made = records(n)
    batches = [made[start : start + BATCH] for start in range(0, n, BATCH)]
    started = cpu()
    for taken in batches:
        build_batch(taken, SECRET_HEADERS, JSON_KEYS)
    print(f"build_batch   {1e6 * (cpu() - started) / n:6.1f} µs CPU per record ({n} records)")
    if "sqlite" in sys.argv[2:]:
        with tempfile.TemporaryDirectory() as directory:
            spent = asyncio.run(store(f"sqlite+aiosqlite:///{directory}/bench.db", batches))
        print(f"+ sqlite      {1e6 * spent / n:6.1f} µs CPU per record (rows built and stored)")
    if "postgresql" in sys.argv[2:]:
        database = f"writer_cpu_{uuid.uuid4().hex[:8]}"
        import asyncpg

        async def admin(statement: str) -> None:
            connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            await connection.execute(statement)
            await connection.close()

        asyncio.run(admin(f"CREATE DATABASE {database}"))
        try:
            url = f"postgresql://postgres@127.0.0.1:5432/{database}"
            spent = asyncio.run(store(url, batches))
        finally:
            asyncio.run(admin(f"DROP DATABASE {database}"))
        print(f"+ postgresql  {1e6 * spent / n:6.1f} µs CPU per record (rows built and stored)")


if __name__ == "__main__":
    main()
