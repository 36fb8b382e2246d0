"""annotation upkeep: withdrawn items, private projects and accounts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

A maintainer may withdraw a source item before release (a wrong or
duplicated item): the item, its Label Studio task and its annotations go, and
``withdrawn_item`` keeps what it was, why, and how many annotations it lost.

Items of the private held-out split live on a second, private Label Studio
server: ``annotation_project.private`` marks a dataset's private project (one
per dataset and language beside its community one), and
``labelstudio_account.private`` a trusted annotator's account there (one per
user and server). Existing projects and accounts are the community server's.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)
_NO = sa.false()


def upgrade() -> None:
    op.create_table(
        "withdrawn_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", _S(length=100), nullable=False),
        sa.Column("split", _S(length=20), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("reason", _S(length=500), nullable=False),
        sa.Column("annotations", sa.Integer(), nullable=False),
        sa.Column("withdrawn_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["annotation_project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_withdrawn_item_project_id", "withdrawn_item", ["project_id"])

    with op.batch_alter_table("annotation_project") as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=_NO))
        batch.drop_constraint("uq_annotation_project_language", type_="unique")
        batch.create_unique_constraint(
            "uq_annotation_project_language", ["dataset_name", "language", "private"]
        )
    # 0004 left the user_id constraint unnamed: PostgreSQL named it, SQLite did not.
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table(
        "labelstudio_account", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}
    ) as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=_NO))
        batch.drop_constraint(
            "labelstudio_account_user_id_key" if postgresql else "uq_labelstudio_account_user_id",
            type_="unique",
        )
        batch.create_unique_constraint("uq_labelstudio_account_user", ["user_id", "private"])


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0014 has no downgrade: restore the database backup taken before upgrading."
    )
