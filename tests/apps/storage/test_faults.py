"""Recording never holds traffic back: a full queue, a database that goes away mid-load and
comes back, one that is not there at start. Every request is answered; every transaction not
recorded is counted; recording resumes by itself.

PostgreSQL "goes away" through a TCP relay in front of the shared server that the test closes
and opens again, so the server other tests use is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest
from sqlalchemy import func, select

import ferryman
from ferryman.apps.storage.migrate import create_engine, head_revision, migrate
from ferryman.apps.storage.schema import transactions
from tests.apps.storage.conftest import PG_HOST, PG_PORT, reset_postgresql
from tests.servers.edge import EdgeServer


class Relay:
    """A TCP relay on a fixed port to PostgreSQL: :meth:`down` closes it and every connection
    through it (clients see refusals), :meth:`up` listens again on the same port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()
        self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def stored_count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(transactions)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_full_queue_drops_and_counts_while_traffic_flows(
    serve: Any, database_url: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    # A writer that waits for 10000 transactions or a minute: the queue of 10 fills.
    served = await serve(
        database_url,
        [("api", edge.url)],
        "storage.queue_size=10",
        "storage.batch_size=10000",
        "storage.flush_interval=60",
    )
    answers = [await client.get(served.url("api", f"/echo?n={n}")) for n in range(30)]
    assert [response.status_code for response in answers] == [200] * 30
    assert served.storage.queue_depth == 10
    assert served.storage.dropped == 20
    await served.storage.flush(10)
    assert served.storage.recorded == 10
    assert await stored_count(database_url) == 10


async def test_postgresql_going_away_mid_load_loses_nothing_uncounted(
    serve: Any, pg_database: str, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    await reset_postgresql(pg_database)
    relay = Relay()
    await relay.up()
    url = pg_database.replace(f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{relay.port}")
    served = await serve(
        url,
        [("api", edge.url)],
        "storage.queue_size=40",
        "storage.batch_size=10",
        "storage.backlog_size=40000",
    )
    storage = served.storage
    statuses: list[int] = []

    async def load(count: int) -> None:
        for _ in range(count):
            statuses.append((await client.get(served.url("api", "/echo"))).status_code)

    await load(30)
    await storage.flush(10)
    assert storage.recorded == 30 and storage.available

    await relay.down()
    await load(100)  # the database is away: answered all the same
    await wait_until(lambda: not storage.available)
    assert storage.dropped > 0  # 100 records > what queue and backlog hold: counted, not kept

    await relay.up()
    await wait_until(lambda: storage.available and storage.queue_depth == 0)
    await load(20)
    await storage.flush(10)

    assert statuses == [200] * 150
    assert storage.recorded + storage.dropped == 150
    assert await stored_count(pg_database) == storage.recorded
    assert storage.recorded >= 30 + 20  # before, and after it came back
    await relay.down()


async def test_a_database_unreachable_at_start_does_not_stop_the_proxy(
    serve: Any, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # nothing listens there once the probe closes
    served = await serve(
        f"postgresql://postgres@127.0.0.1:{dead}/nothing",
        [("api", edge.url)],
        "storage.queue_size=5",
        "storage.timeout=2",
    )
    answers = [await client.get(served.url("api", "/echo")) for _ in range(12)]
    assert [response.status_code for response in answers] == [200] * 12
    assert served.storage.available is False
    assert served.storage.dropped == 7 and served.storage.queue_depth == 5
    # The API says the database cannot be read, in JSON, rather than failing the kernel.
    response = await client.get(served.api + "/transactions")
    assert response.status_code == 503
    assert response.json()["message"] == "the transaction database cannot be read now"


async def test_several_processes_migrating_at_once_agree(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate(engine, database_url) for engine in engines))
        async with engines[0].connect() as connection:
            from sqlalchemy import text

            versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [head_revision()]
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.parametrize("value,seconds", [("30d", 2592000.0), ("12h", 43200.0), (90, 90.0)])
def test_retention_takes_durations(value: object, seconds: float) -> None:
    from ferryman.apps.storage.settings import StorageSettings

    assert StorageSettings(url="sqlite:///x.db", retention=value).retention == seconds


def test_bad_settings_name_the_key() -> None:
    from ferryman.system import load_config
    from ferryman.system.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        load_config([], overrides=["storage.url=mysql://x/y", "storage.retention=soon"])
    message = str(caught.value)
    assert "storage.url" in message and "not supported" in message
    assert "storage.retention" in message and "'soon' is not a duration" in message
