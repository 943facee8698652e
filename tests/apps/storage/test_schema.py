"""The migrations build the schema the code declares (``schema.py``), on both databases: a
column, index or partial-index condition added to one and not the other fails here."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ferryman.apps.storage.migrate import create_engine, head_revision, migrate
from ferryman.apps.storage.schema import metadata


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [
        difference
        for difference in compare_metadata(context, metadata)
        if not (isinstance(difference, tuple) and difference[0] == "remove_table")
    ]


def _favourite_index(connection: Any) -> dict[str, Any]:
    indexes = inspect(connection).get_indexes("transactions")
    return next(index for index in indexes if index["name"] == "ix_transactions_favourite")


async def test_the_migrations_build_the_declared_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            version = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert version.scalar() == head_revision()
            # Only favourites are indexed: inserts of ordinary rows do not touch the index.
            index = await connection.run_sync(_favourite_index)
            where = index.get("dialect_options", {})
            conditions = [where.get(f"{dialect}_where") for dialect in ("sqlite", "postgresql")]
            assert any(c is not None and "favourite" in str(c) for c in conditions), index
    finally:
        await engine.dispose()
