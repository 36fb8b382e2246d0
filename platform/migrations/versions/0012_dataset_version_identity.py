"""dataset version identity: a version is its dataset and its content hash

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``dataset_version.content_hash`` was unique on its own, so items equal to
another dataset's were filed under that dataset, with its name and licence.
Now ``(dataset_id, content_hash)`` is unique: the same items under another
name are that dataset's own version. ``content_hash`` keeps an index. Existing
rows are unchanged (each hash was unique, so each pair is).

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite keeps the 0001 constraint unnamed; batch mode names it by this convention.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _content_hash_constraint() -> str:
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("dataset_version"):
        if constraint["column_names"] == ["content_hash"] and constraint["name"]:
            return str(constraint["name"])
    return "uq_dataset_version_content_hash"


def upgrade() -> None:
    name = _content_hash_constraint()
    with op.batch_alter_table("dataset_version", naming_convention=_SQLITE_NAMES) as batch:
        batch.drop_constraint(name, type_="unique")
        batch.create_unique_constraint(
            "uq_dataset_version_dataset_hash", ["dataset_id", "content_hash"]
        )
        batch.create_index("ix_dataset_version_content_hash", ["content_hash"], unique=False)


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0012 has no downgrade: restore the database backup taken before upgrading."
    )
