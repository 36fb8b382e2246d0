"""judging: people and judge models judging model answers, community scores

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

New tables only: judging projects (an annotation project made of a finished
job's answers), the judged responses linking each task to its outputs, and
the community scores computed from the judgements (with a judge model's
agreement with people), and each benchmark's optional judge model.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)
_KINDS = ["rating", "pairwise", "safety"]


def upgrade() -> None:
    op.create_table(
        "judging_project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_project_id", sa.Integer(), nullable=False),
        sa.Column("kind", _S(length=20), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("other_job_id", sa.Integer(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("judge_job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            f"kind IN ({', '.join(repr(k) for k in _KINDS)})", name="ck_judging_project_kind"
        ),
        sa.ForeignKeyConstraint(["annotation_project_id"], ["annotation_project.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["other_job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["judge_job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("annotation_project_id"),
    )
    op.create_index("ix_judging_project_job_id", "judging_project", ["job_id"])
    op.create_index("ix_judging_project_other_job_id", "judging_project", ["other_job_id"])
    op.create_table(
        "judged_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_item_id", sa.Integer(), nullable=False),
        sa.Column("judging_project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.Column("other_output_id", sa.Integer(), nullable=True),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["source_item_id"], ["source_item.id"]),
        sa.ForeignKeyConstraint(["judging_project_id"], ["judging_project.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["output_id"], ["output.id"]),
        sa.ForeignKeyConstraint(["other_output_id"], ["output.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_item_id"),
    )
    op.create_index(
        "ix_judged_response_judging_project_id", "judged_response", ["judging_project_id"]
    )
    op.create_index("ix_judged_response_item_id", "judged_response", ["item_id"])
    op.create_index("ix_judged_response_output_id", "judged_response", ["output_id"])
    op.create_table(
        "community_score",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("judge", _S(length=200), nullable=False),
        sa.Column("metric", _S(length=30), nullable=False),
        sa.Column("breakdown", _S(length=30), nullable=False),
        sa.Column("group", _S(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=False),
        sa.Column("ci_high", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("judgements", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("agreement_items", sa.Integer(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_id", "judge", "metric", "breakdown", "group", name="uq_community_score"
        ),
    )
    op.create_index("ix_community_score_job_id", "community_score", ["job_id"])
    with op.batch_alter_table("benchmark") as batch:
        batch.add_column(sa.Column("judge", sa.JSON(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0006 has no downgrade: restore the database backup taken before upgrading."
    )
