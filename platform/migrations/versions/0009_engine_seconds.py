"""engine seconds: each shard run's share of its engine's busy time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Pools report how long their engine worked on each shard (its share of the
engine's busy time; GPU-seconds on a one-GPU engine). Existing runs have
no measurement (NULL); nothing else changes.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shard_run") as batch:
        batch.add_column(sa.Column("engine_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0009 has no downgrade: restore the database backup taken before upgrading."
    )
