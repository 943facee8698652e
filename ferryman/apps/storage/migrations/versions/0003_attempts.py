"""The tries that failed before a transaction's last one: retries become visible.

A request that went again (a retry after a refused connection, a timeout or a 503, or the
next upstream after a refusal) keeps each failed try's upstream and what failed, as a JSON
list (``[{"upstream": ..., "failure": ...}]``); ``NULL`` when the first try answered, as for
every row written before this column existed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transactions", sa.Column("attempts", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:  # (SQLite drops columns by copying)
        batch.drop_column("attempts")
