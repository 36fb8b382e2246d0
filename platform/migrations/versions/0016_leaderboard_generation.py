"""leaderboard generations: a counter per benchmark raised by every rebuild of its rows

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

The site caches rendered leaderboard, language and model pages under a key
read from the database. The key was the newest leaderboard row's id and the
row count, but a rebuild deletes and inserts a benchmark's rows, and on
SQLite the new rows can take the old ids: a board rebuilt after a cheating
pool's scores were withdrawn could keep its old key and its old page.
``leaderboard_generation`` is raised in the rebuild's own transaction.
Existing boards start at generation 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leaderboard_generation",
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["benchmark_id"], ["benchmark.id"]),
        sa.PrimaryKeyConstraint("benchmark_id"),
    )
    op.execute(
        "INSERT INTO leaderboard_generation (benchmark_id, generation, rebuilt_at) "
        "SELECT DISTINCT benchmark_id, 1, CURRENT_TIMESTAMP FROM leaderboard_entry"
    )


def downgrade() -> None:
    op.drop_table("leaderboard_generation")
