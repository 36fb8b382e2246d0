"""community annotation: projects, source items, annotations, reviews, Label Studio
accounts, assignments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

New tables only; nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)
_TASK_TYPES = ["qa", "translation", "post_edit", "label", "rating", "pairwise", "safety"]


def _check(values: Sequence[str], column: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "annotation_project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_name", _S(length=100), nullable=False),
        sa.Column("language", _S(length=35), nullable=False),
        sa.Column("task_type", _S(length=20), nullable=False),
        sa.Column("title", _S(length=200), nullable=False),
        sa.Column("annotations_per_item", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("labelstudio_project_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            _check(_TASK_TYPES, "task_type"), name="ck_annotation_project_task_type"
        ),
        sa.CheckConstraint("annotations_per_item >= 1", name="ck_annotation_project_k"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_name", "language", name="uq_annotation_project_language"),
        sa.UniqueConstraint("labelstudio_project_id"),
    )
    op.create_index("ix_annotation_project_dataset_name", "annotation_project", ["dataset_name"])
    op.create_table(
        "source_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", _S(length=100), nullable=False),
        sa.Column("split", _S(length=20), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("labelstudio_task_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["annotation_project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "key", name="uq_source_item_key"),
        sa.UniqueConstraint("labelstudio_task_id"),
    )
    op.create_index("ix_source_item_project_id", "source_item", ["project_id"])
    op.create_table(
        "annotation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("labelstudio_annotation_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("labelstudio_user_id", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("was_cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("synced_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["source_item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("labelstudio_annotation_id"),
    )
    op.create_index("ix_annotation_item_id", "annotation", ["item_id"])
    op.create_index("ix_annotation_labelstudio_user_id", "annotation", ["labelstudio_user_id"])
    op.create_table(
        "annotation_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("verdict", _S(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            _check(["accepted", "rejected"], "verdict"), name="ck_annotation_review_verdict"
        ),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotation.id"]),
        sa.ForeignKeyConstraint(["reviewer_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("annotation_id", "reviewer_id", name="uq_annotation_review_reviewer"),
    )
    op.create_index("ix_annotation_review_annotation_id", "annotation_review", ["annotation_id"])
    op.create_index("ix_annotation_review_reviewer_id", "annotation_review", ["reviewer_id"])
    op.create_table(
        "labelstudio_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("labelstudio_user_id", sa.Integer(), nullable=False),
        sa.Column("labelstudio_username", _S(length=254), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
        sa.UniqueConstraint("labelstudio_user_id"),
    )
    op.create_table(
        "annotation_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("labelstudio_user_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["source_item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "labelstudio_user_id", name="uq_annotation_assignment"),
    )
    op.create_index("ix_annotation_assignment_item_id", "annotation_assignment", ["item_id"])
    op.create_index(
        "ix_annotation_assignment_labelstudio_user_id",
        "annotation_assignment",
        ["labelstudio_user_id"],
    )


def downgrade() -> None:
    for table in (
        "annotation_assignment",
        "labelstudio_account",
        "annotation_review",
        "annotation",
        "source_item",
        "annotation_project",
    ):
        op.drop_table(table)
