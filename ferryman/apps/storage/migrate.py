"""The storage's engine, and the migrations applied to it at start (``alembic upgrade head``).

Several workers (``ferryman start --workers 4``) or hosts start at once against one database,
and each applies the migrations; they must not race to create the same tables. On PostgreSQL
the upgrade runs inside one transaction holding an advisory lock (DDL is transactional there,
and the lock is released with the transaction). On SQLite, whose file is shared only by the
processes of one host, an ``flock`` on a file beside the database serialises them. Whoever
comes second finds the schema at head and has nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ferryman.apps.storage.settings import driver_url

__all__ = ["MIGRATIONS", "create_engine", "head_revision", "migrate", "sqlite_path"]

#: Where Alembic's env.py and versions/ are, inside the package.
MIGRATIONS: Final = str(Path(__file__).with_name("migrations"))
#: pg_advisory_xact_lock's key: "ferryman" in ASCII, as an integer that fits a bigint.
_LOCK_KEY: Final = 0x66657272796D616E


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL; ``None`` for other databases and in-memory ones."""
    parsed = make_url(driver_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    return None if not database or database == ":memory:" else database


def create_engine(url: str, *, timeout: float = 10.0) -> AsyncEngine:
    """An engine for ``url``: a small pool, connections checked before use (a database that
    restarted is noticed once, not on every request), and, on SQLite, WAL and a busy timeout so
    that the dashboard's reads and several workers' writes do not fail each other."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    path = sqlite_path(url)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        options["connect_args"] = {"timeout": timeout}
    elif make_url(driver_url(url)).get_backend_name() == "postgresql":
        options.update(
            pool_size=4,
            max_overflow=4,
            pool_timeout=timeout,
            connect_args={"timeout": timeout, "command_timeout": timeout},
        )
    engine = create_async_engine(driver_url(url), **options)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if path is not None:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.close()

    return engine


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision the package ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine, url: str) -> None:
    """Apply every migration the database lacks (``alembic upgrade head``), one process at
    a time."""
    path = sqlite_path(url)
    lock = None if path is None else path + ".migrate.lock"
    async with _file_lock(lock), engine.begin() as connection:
        await connection.run_sync(_upgrade)


@contextlib.asynccontextmanager
async def _file_lock(path: str | None) -> AsyncIterator[None]:
    if path is None:
        yield
        return
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
