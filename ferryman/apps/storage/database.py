"""What the writer does to the database, and how its failures read: the batch INSERTs, the
janitor's DELETEs, and database errors and URLs in words fit for a log line.

Shared by the writer process (:mod:`.writer`), which runs them under load, and by the proxy's
:class:`~ferryman.apps.storage.recorder.Storage`, whose :meth:`clean` runs the janitor on demand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.apps.storage.rows import COLUMNS, Batch
from ferryman.apps.storage.schema import bodies, tags, transactions

__all__ = ["clean", "insert_statements", "masked", "words", "write_batch"]

logger = logging.getLogger("ferryman.storage")


def insert_statements(paramstyle: str) -> tuple[str, str, str]:
    """The writer's three INSERTs (bodies and tags skip rows already there), in the driver's
    parameter style."""

    def insert_sql(table: str, columns: Sequence[str], ignore: str) -> str:
        if paramstyle == "qmark":
            marks = ", ".join("?" for _ in columns)
        elif paramstyle in ("numeric_dollar", "numeric"):
            sign = "$" if paramstyle == "numeric_dollar" else ":"
            marks = ", ".join(f"{sign}{n}" for n in range(1, len(columns) + 1))
        else:
            marks = ", ".join("%s" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        return sql + (f" ON CONFLICT ({ignore}) DO NOTHING" if ignore else "")

    return (
        insert_sql("bodies", ("hash", "content_type", "size", "content"), "hash"),
        insert_sql("transactions", COLUMNS, ""),
        insert_sql("tags", ("transaction_id", "name", "value"), "transaction_id, name"),
    )


async def write_batch(engine: AsyncEngine, statements: tuple[str, str, str], batch: Batch) -> None:
    """One database transaction, at the driver's level: SQLAlchemy's per-row processing of
    the parameters cost more than the database did (the rows are already plain values).

    PostgreSQL (asyncpg) takes the transactions by ``COPY``, several times faster than an
    INSERT per row; bodies and tags, which may already be there, by ``INSERT ... ON CONFLICT
    DO NOTHING``. SQLite (aiosqlite) takes an ``executemany`` per table."""
    async with engine.connect() as connection:
        raw: Any = (await connection.get_raw_connection()).driver_connection
        if raw is None:  # (a pool that lost it: SQLAlchemy would have raised first)
            raise ConnectionError("the database connection is closed")
        if engine.dialect.name == "postgresql":
            async with raw.transaction():
                if batch.bodies:
                    await raw.executemany(statements[0], list(batch.bodies.values()))
                await raw.copy_records_to_table(
                    "transactions", records=batch.transactions, columns=COLUMNS
                )
                if batch.tags:
                    await raw.executemany(statements[2], batch.tags)
            return
        try:
            if batch.bodies:
                await raw.executemany(statements[0], list(batch.bodies.values()))
            await raw.executemany(statements[1], batch.transactions)
            if batch.tags:
                await raw.executemany(statements[2], batch.tags)
            await raw.commit()
        except BaseException:
            await raw.rollback()
            raise


async def clean(engine: AsyncEngine, retention: float, now: float | None = None) -> tuple[int, int]:
    """Delete transactions older than ``retention`` seconds (favourites excepted), then bodies
    no transaction refers to. Returns how many of each were deleted."""
    cutoff = (time.time() if now is None else now) - retention
    old = select(transactions.c.id).where(
        transactions.c.started_at < cutoff, transactions.c.favourite.is_(False)
    )
    async with engine.begin() as connection:
        await connection.execute(delete(tags).where(tags.c.transaction_id.in_(old)))
        deleted = (
            await connection.execute(
                delete(transactions).where(
                    transactions.c.started_at < cutoff, transactions.c.favourite.is_(False)
                )
            )
        ).rowcount
        orphans = (
            await connection.execute(
                delete(bodies).where(
                    ~exists().where(transactions.c.request_body == bodies.c.hash),
                    ~exists().where(transactions.c.response_body == bodies.c.hash),
                )
            )
        ).rowcount
    return deleted, orphans


def masked(url: str) -> str:
    """The URL without its password, for log lines."""
    from sqlalchemy.engine.url import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable URL)"


def words(exc: BaseException) -> str:
    """An exception as a reader wants it: the driver's message, not the class hierarchy."""
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    original: Any = getattr(exc, "orig", None) or exc
    message = str(original).strip().splitlines()[0] if str(original).strip() else ""
    if isinstance(original, ConnectionRefusedError) or "Connect call failed" in message:
        return "connection refused"
    if isinstance(original, OSError) and original.strerror:
        return original.strerror.lower()
    return message or type(original).__name__
