"""annotators and held-out shards: a user's languages, shards only the server runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Adds ``user_account.languages``, the BCP-47 tags of the languages a person
annotates in (the annotation page lists the projects in those languages;
existing users start with none), and ``shard.server_only``, set on the shards
of a private held-out split, which only the operator's local pools may lease
(existing shards are not).

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("languages", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("user_account") as batch:
        # The default only filled existing rows; the application sets the column.
        batch.alter_column("languages", server_default=None)
    with op.batch_alter_table("shard") as batch:
        batch.add_column(
            sa.Column("server_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("shard") as batch:
        batch.alter_column("server_only", server_default=None)


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0007 has no downgrade: restore the database backup taken before upgrading."
    )
