"""Favourites indexed by a partial index: only the few favourite rows are in it.

The full index on ``favourite`` held every transaction, so every insert paid for a B-tree
whose entries were almost all ``false``; the janitor and the favourite filter only ever look
for the ``true`` ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FAVOURITE = sa.column("favourite", sa.Boolean).is_(True)


def upgrade() -> None:
    op.drop_index("ix_transactions_favourite", table_name="transactions")
    op.create_index(
        "ix_transactions_favourite",
        "transactions",
        ["favourite"],
        sqlite_where=_FAVOURITE,
        postgresql_where=_FAVOURITE,
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_favourite", table_name="transactions")
    op.create_index("ix_transactions_favourite", "transactions", ["favourite"])
