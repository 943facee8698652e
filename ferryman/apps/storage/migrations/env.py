"""Alembic's environment: runs on the connection :mod:`ferryman.apps.storage.migrate` hands it.

Never run through the ``alembic`` command with an ini file: ferryman applies its migrations
itself at start, on the storage's own (asynchronous) engine, inside the lock that keeps several
workers from migrating at once. For a new revision during development::

    alembic -c /dev/null revision ...   # or copy the latest file in versions/ by hand
"""

from __future__ import annotations

from alembic import context

from ferryman.apps.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only ferryman.apps.storage.migrate runs this
    raise RuntimeError("ferryman's migrations run through ferryman.apps.storage.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
)
with context.begin_transaction():
    context.run_migrations()
