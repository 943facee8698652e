"""The first schema: transactions, bodies by content hash, tags.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bodies",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("content_type", sa.String(200)),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("upstream", sa.Text),
        sa.Column("http_version", sa.String(8)),
        sa.Column("client", sa.String(64)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration", sa.Float),
        sa.Column("ttfb", sa.Float),
        sa.Column("blocked", sa.Float),
        sa.Column("connect", sa.Float),
        sa.Column("send", sa.Float),
        sa.Column("wait", sa.Float),
        sa.Column("receive", sa.Float),
        sa.Column("reused", sa.Boolean, nullable=False),
        sa.Column("request_size", sa.Integer, nullable=False),
        sa.Column("response_size", sa.Integer, nullable=False),
        sa.Column("request_headers", sa.Text),
        sa.Column("response_headers", sa.Text),
        sa.Column("request_body", sa.String(64)),
        sa.Column("response_body", sa.String(64)),
        sa.Column("request_truncated", sa.Boolean, nullable=False),
        sa.Column("response_truncated", sa.Boolean, nullable=False),
        sa.Column("tags", sa.JSON),
        sa.Column("cache", sa.String(32)),
        sa.Column("favourite", sa.Boolean, nullable=False),
    )
    op.create_index("ix_transactions_started_at", "transactions", ["started_at"])
    op.create_index(
        "ix_transactions_endpoint_started_at", "transactions", ["endpoint", "started_at"]
    )
    op.create_index("ix_transactions_status_started_at", "transactions", ["status", "started_at"])
    op.create_index("ix_transactions_favourite", "transactions", ["favourite"])
    op.create_table(
        "tags",
        sa.Column(
            "transaction_id",
            sa.String(32),
            sa.ForeignKey("transactions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_tags_name_value", "tags", ["name", "value"])


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("transactions")
    op.drop_table("bodies")
