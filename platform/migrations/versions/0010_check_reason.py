"""check reason: why a shard run's result waited for another owner's replica

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

A run's result waits for a replica because its pool is new (``new_pool``),
because it was drawn for a check (``sample``), or because the job's audit
picked it before scoring (``audit``); NULL: it was accepted at once (or ran
on the operator's own pool). The job audit reads it: every proven pool
whose results a job uses has one of them checked. Existing runs get NULL.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = ("new_pool", "sample", "audit")


def upgrade() -> None:
    with op.batch_alter_table("shard_run") as batch:
        batch.add_column(
            sa.Column("check_reason", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
        batch.create_check_constraint(
            "ck_shard_run_check_reason",
            f"check_reason IN ({', '.join(repr(r) for r in _REASONS)})",
        )


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0010 has no downgrade: restore the database backup taken before upgrading."
    )
