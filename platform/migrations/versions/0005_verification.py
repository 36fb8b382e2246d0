"""verification: replica verdicts, pool reputation, memory placement

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Adds what verified results and placement by memory need: each shard run's
verdict (agreed, disagreed, withdrawn), each pool's agreement counts, the
reason for its status and the pool credential it registered with, and each
job's memory estimate. Existing rows keep their meaning: runs have no
verdict, pools start with no agreements, jobs without an estimate go to any
pool.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VERDICTS = ["agreed", "disagreed", "withdrawn"]


def upgrade() -> None:
    with op.batch_alter_table("shard_run") as batch:
        batch.add_column(
            sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
        batch.create_check_constraint(
            "ck_shard_run_verdict",
            f"verdict IN ({', '.join(repr(v) for v in _VERDICTS)})",
        )
    with op.batch_alter_table("pool") as batch:
        batch.add_column(sa.Column("agreements", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("disagreements", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("credential_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_pool_credential", "pool_credential", ["credential_id"], ["id"])
        batch.create_index("ix_pool_credential_id", ["credential_id"])
    with op.batch_alter_table("pool") as batch:
        # The defaults only filled existing rows; the application sets both.
        batch.alter_column("agreements", server_default=None)
        batch.alter_column("disagreements", server_default=None)
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("memory_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0005 has no downgrade: restore the database backup taken before upgrading."
    )
