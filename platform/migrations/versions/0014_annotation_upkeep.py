"""annotation upkeep: withdrawn items

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-06

A maintainer may withdraw a source item before release (a wrong or
duplicated item): the item, its Label Studio task and its annotations go, and
``withdrawn_item`` keeps what it was, why, and how many annotations it lost.
New table only; nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0014"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)


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


def downgrade() -> None:
    op.drop_index("ix_withdrawn_item_project_id", table_name="withdrawn_item")
    op.drop_table("withdrawn_item")
