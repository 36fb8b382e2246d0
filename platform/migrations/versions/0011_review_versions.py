"""review versions: each review names the version of the annotation it saw

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

``annotation_review.annotation_version`` is the SHA-256 of the annotation's
result as the reviewer saw it; a later edit of the annotation gives it a new
version and the review stops counting. Reviews made before this revision get
the version of the annotation as it is now when the annotation has not
changed since the review (its ``updated_at`` is not later than the review),
else NULL: an edit after a review voids it.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _version(result: Any) -> str:
    # Frozen copy of sabha.annotation.votes.annotation_version as of this revision.
    canonical = json.dumps(
        list(result or []), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upgrade() -> None:
    with op.batch_alter_table("annotation_review") as batch:
        batch.add_column(
            sa.Column(
                "annotation_version",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=True,
            )
        )
    review = sa.table(
        "annotation_review",
        sa.column("id", sa.Integer()),
        sa.column("annotation_id", sa.Integer()),
        sa.column("annotation_version", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    annotation = sa.table(
        "annotation",
        sa.column("id", sa.Integer()),
        sa.column("result", sa.JSON()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(review.c.id, review.c.created_at, annotation.c.result, annotation.c.updated_at)
        .select_from(review)
        .join(annotation, annotation.c.id == review.c.annotation_id)
    ).all()
    for review_id, reviewed_at, result, updated_at in rows:
        if _aware(updated_at) > _aware(reviewed_at):
            continue  # changed after the review: the review saw another version
        connection.execute(
            review.update()
            .where(review.c.id == review_id)
            .values(annotation_version=_version(result))
        )


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0011 has no downgrade: restore the database backup taken before upgrading."
    )
