"""public annotator profiles: an opt-in name shown on public pages

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

``user_account.profile_name`` is the name a person chose for their public
annotator profile (``/annotators/<name>``) and for their annotations' history
on public pages; ``profile_name_key`` is its NFC, case-folded form, unique.
Both stay empty until the person opts in: everyone is anonymous after the
upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("user_account", sa.Column("profile_name", _S(length=40), nullable=True))
    op.add_column("user_account", sa.Column("profile_name_key", _S(length=160), nullable=True))
    op.create_index(
        "ix_user_account_profile_name_key", "user_account", ["profile_name_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_user_account_profile_name_key", table_name="user_account")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("profile_name_key")
        batch.drop_column("profile_name")
