"""The tables, in SQLAlchemy Core: what the writer inserts and the queries read.

Core rather than the ORM: the writer inserts hundreds of rows per statement and the queries
return plain rows for JSON; there are no objects whose identity matters. The migrations in
``migrations/versions`` create the same tables; ``tests/apps/storage/test_schema.py`` checks
that they agree.

* ``transactions``: one row per request, its heads as header blocks (redacted before they were
  stored: parsing them into JSON for every request would cost the proxy's CPU),
  its bodies by content hash. Times are epoch seconds (floats): they sort, compare and bucket
  the same way on SQLite and PostgreSQL.
* ``bodies``: each distinct body once, keyed by its SHA-256 (hex), so a thousand identical
  answers cost one row.
* ``attempts`` (a column of ``transactions``): the failed tries of a request that went again.
* ``tags``: one row per tag of a transaction, for filtering and facets (``env=prod``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["bodies", "metadata", "tags", "transactions"]

metadata = MetaData()

transactions = Table(
    "transactions",
    metadata,
    Column("id", String(32), primary_key=True),  # Transaction.id: time-ordered
    Column("endpoint", String(200), nullable=False),
    Column("method", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("upstream", Text),
    Column("http_version", String(8)),
    Column("client", String(64)),
    Column("status", Integer, nullable=False),
    Column("reason", String(200)),
    Column("error", Text),
    Column("started_at", Float, nullable=False),
    Column("duration", Float),
    Column("ttfb", Float),
    Column("blocked", Float),
    Column("connect", Float),
    Column("send", Float),
    Column("wait", Float),
    Column("receive", Float),
    Column("reused", Boolean, nullable=False, default=False),
    Column("request_size", Integer, nullable=False, default=0),
    Column("response_size", Integer, nullable=False, default=0),
    # The header blocks ("Name: value" CRLF-terminated lines) as received, redacted.
    Column("request_headers", Text),
    Column("response_headers", Text),
    Column("request_body", String(64)),  # bodies.hash; no foreign key: see the janitor
    Column("response_body", String(64)),
    Column("request_truncated", Boolean, nullable=False, default=False),
    Column("response_truncated", Boolean, nullable=False, default=False),
    Column("tags", JSON),  # {"name": "value"}, as the API shows them
    Column("cache", String(32)),
    Column("favourite", Boolean, nullable=False, default=False),
    # The tries that failed before the last one, [{"upstream", "failure"}]; NULL: none did
    # (migration 0003).
    Column("attempts", JSON),
    Index("ix_transactions_started_at", "started_at"),
    Index("ix_transactions_endpoint_started_at", "endpoint", "started_at"),
    Index("ix_transactions_status_started_at", "status", "started_at"),
)
# Partial: only favourites are in it (see migration 0002).
Index(
    "ix_transactions_favourite",
    transactions.c.favourite,
    sqlite_where=transactions.c.favourite.is_(True),
    postgresql_where=transactions.c.favourite.is_(True),
)

bodies = Table(
    "bodies",
    metadata,
    Column("hash", String(64), primary_key=True),  # SHA-256 of content, hex
    Column("content_type", String(200)),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "transaction_id",
        String(32),
        ForeignKey("transactions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_name_value", "name", "value"),
)
