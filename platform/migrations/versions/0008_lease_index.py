"""lease index: a partial index of queued shards, in lease order

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

``lease_next_shard`` picks the first queued shard by ``(job_id, index)``.
With only an index on ``status`` the pick reads every queued row of the
job and sorts them; this partial index holds just the queued shards, in
the order they are leased, so the pick reads one entry. Existing rows are
indexed as they are; nothing else changes.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    queued = sa.text("status = 'queued'")
    op.create_index(
        "ix_shard_queued",
        "shard",
        ["job_id", "index"],
        postgresql_where=queued,
        sqlite_where=queued,
    )


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0008 has no downgrade: restore the database backup taken before upgrading."
    )
