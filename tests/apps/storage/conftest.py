"""Storage under test: SQLite files in tmp_path, and a PostgreSQL database made for the run.

The PostgreSQL database (``ferryman_test_<random>``, created through the ``test`` database on
127.0.0.1:5432 and dropped at the end) is shared by the run; each test starts from no tables,
so each also runs the migrations. Without PostgreSQL the PostgreSQL cases skip, or fail when
``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from ferryman.apps.storage import Storage
from ferryman.proxy.application import build_kernel
from ferryman.proxy.server import ProxyServer
from ferryman.system import SystemBuilder, load_config

PG_HOST = os.environ.get("FERRYMAN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FERRYMAN_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("FERRYMAN_TEST_PG_USER", "postgres")


def _admin(statement: str) -> None:
    """Run ``statement`` in the ``test`` database, in a thread of its own: the fixture may be
    asked for from inside a running event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(statement)).result()


async def _admin_async(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="test", timeout=5
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The run's PostgreSQL database, as a ``postgresql://`` URL."""
    name = f"ferryman_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        message = f"PostgreSQL on {PG_HOST}:{PG_PORT} (database test) is not usable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_postgresql(url: str) -> None:
    from ferryman.apps.storage.migrate import create_engine

    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("DROP TABLE IF EXISTS tags, transactions, bodies, alembic_version CASCADE")
        )
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each test that takes it runs against SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/transactions.db"
    url: str = request.getfixturevalue("pg_database")
    await reset_postgresql(url)
    return url


@dataclass
class Served:
    server: ProxyServer
    storage: Storage

    def url(self, endpoint: str, path: str = "/") -> str:
        host, port = self.server.addresses[endpoint]
        return f"http://{host}:{port}{path}"

    @property
    def api(self) -> str:
        host, port = next(
            address
            for name, address in self.server.addresses.items()
            if name != "api" and name not in self.endpoints
        )
        return f"http://{host}:{port}/api"

    @property
    def endpoints(self) -> list[str]:
        return [endpoint.name for endpoint in self.server.settings.endpoints]


async def serve_with_storage(url: str, endpoints: list[tuple[str, str]], *settings: str) -> Served:
    """A started ProxyServer (one port per endpoint) recording into ``url``; ``settings`` are
    ``--set`` overrides (``storage.queue_size=5``)."""
    overrides = ["proxy.port=0", f"storage.url={url}", "storage.flush_interval=0.05", *settings]
    for index, (name, upstream) in enumerate(endpoints):
        overrides += [
            f"proxy.endpoints.{index}.name={name}",
            f"proxy.endpoints.{index}.port=0",
            f"proxy.endpoints.{index}.url={upstream}",
        ]
    config = load_config([], overrides=overrides)
    system = await SystemBuilder(config).build(build_kernel)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    return Served(server, system.provider.resolve(Storage))


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``await serve(url, [(name, upstream)], *overrides)``; stopped after the test."""
    started: list[Served] = []

    async def start(url: str, endpoints: list[tuple[str, str]], *settings: str) -> Served:
        served = await serve_with_storage(url, endpoints, *settings)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.server.shutdown(1)
        await served.server.system.dispose()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    import ferryman

    async with ferryman.AsyncClient(trust_env=False) as session:
        yield session
