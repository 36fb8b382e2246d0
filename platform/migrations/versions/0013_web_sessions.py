"""web sessions: sign-ins kept on the server, so signing out ends them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

Each sign-in is a ``web_session`` row; the cookie holds a random session id
whose SHA-256 is ``secret_hash``. Signing out and a password change end the
rows (``ended_at``); idle and absolute lifetimes are checked against
``last_seen_at`` and ``created_at``. Sessions of earlier releases lived only
in the cookie: after this upgrade everyone signs in again.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=False),
        sa.Column("ended_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_web_session_secret_hash", "web_session", ["secret_hash"], unique=True)
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0013 has no downgrade: restore the database backup taken before upgrading."
    )
