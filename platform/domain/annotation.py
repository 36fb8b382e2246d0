"""Community annotation: projects, items, annotations, reviews, judging."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .columns import enum_column, json_column, status_check, text_column, when_column
from .statuses import AnnotationTaskType, JudgingKind, ReviewVerdict

__all__ = [
    "AnnotationProject",
    "SourceItem",
    "WithdrawnItem",
    "Annotation",
    "AnnotationReview",
    "JudgingProject",
    "JudgedResponse",
    "LabelStudioAccount",
    "AnnotationAssignment",
]


class AnnotationProject(SQLModel, table=True):
    """One dataset's annotation in one language: a Label Studio project.

    ``annotations_per_item`` (k) independent annotations, from different
    annotators, are collected for every source item; Sabha tracks this itself
    because Label Studio Community Edition has no overlap setting.
    """

    __tablename__ = "annotation_project"
    __table_args__ = (
        sa.UniqueConstraint(
            "dataset_name", "language", "private", name="uq_annotation_project_language"
        ),
        status_check("task_type", AnnotationTaskType, "ck_annotation_project_task_type"),
        sa.CheckConstraint("annotations_per_item >= 1", name="ck_annotation_project_k"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_name: str = Field(max_length=100, index=True)
    language: str = Field(max_length=35)
    task_type: AnnotationTaskType = enum_column(AnnotationTaskType, length=20)
    title: str = Field(max_length=200)
    annotations_per_item: int = 2
    options: dict[str, Any] = json_column()
    # Its items are of the private held-out split and live on the private Label
    # Studio server, where only trusted annotators have accounts.
    private: bool = False
    labelstudio_project_id: int | None = Field(default=None, unique=True)
    created_at: datetime = when_column()


class SourceItem(SQLModel, table=True):
    """One uploaded row to annotate: a Label Studio task once imported."""

    __tablename__ = "source_item"
    __table_args__ = (sa.UniqueConstraint("project_id", "key", name="uq_source_item_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="annotation_project.id", index=True)
    key: str = Field(max_length=100)
    split: str = Field(default="test", max_length=20)
    data: dict[str, Any] = json_column()
    labelstudio_task_id: int | None = Field(default=None, unique=True)
    created_at: datetime = when_column()


class WithdrawnItem(SQLModel, table=True):
    """A source item a maintainer withdrew before release: what it was, why, and what it lost.

    The item, its Label Studio task and its annotations are gone; this row is
    the record that it existed.
    """

    __tablename__ = "withdrawn_item"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="annotation_project.id", index=True)
    key: str = Field(max_length=100)
    split: str = Field(max_length=20)
    data: dict[str, Any] = json_column()
    reason: str = Field(max_length=500)
    annotations: int = 0
    withdrawn_at: datetime = when_column()


class Annotation(SQLModel, table=True):
    """One annotation made in Label Studio, kept by its Label Studio id.

    The unique ``labelstudio_annotation_id`` makes every sync an upsert: a
    webhook and a reconciliation pull of the same annotation give one row.
    """

    id: int | None = Field(default=None, primary_key=True)
    labelstudio_annotation_id: int = Field(unique=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    labelstudio_user_id: int = Field(index=True)
    result: list[dict[str, Any]] = json_column()
    was_cancelled: bool = False
    created_at: datetime = when_column()
    updated_at: datetime = when_column()
    synced_at: datetime = when_column()


class AnnotationReview(SQLModel, table=True):
    """A reviewer's verdict on one annotation, with a comment (one per reviewer).

    ``annotation_version`` is the version of the annotation the reviewer saw
    (``sabha.annotation.votes.annotation_version``); the review counts only
    while the annotation still has it. None: made before versions were
    recorded, with the annotation changed since (it counts for nothing).
    """

    __tablename__ = "annotation_review"
    __table_args__ = (
        sa.UniqueConstraint("annotation_id", "reviewer_id", name="uq_annotation_review_reviewer"),
        status_check("verdict", ReviewVerdict, "ck_annotation_review_verdict"),
    )

    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotation.id", index=True)
    reviewer_id: int = Field(foreign_key="user_account.id", index=True)
    verdict: ReviewVerdict = enum_column(ReviewVerdict, length=10)
    comment: str = text_column()
    annotation_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = when_column()


class JudgingProject(SQLModel, table=True):
    """An annotation project whose tasks are a finished job's answers, sampled to be judged.

    ``other_job_id`` is the second job of a pairwise project (the same items,
    another model).
    """

    __tablename__ = "judging_project"
    __table_args__ = (status_check("kind", JudgingKind, "ck_judging_project_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    annotation_project_id: int = Field(foreign_key="annotation_project.id", unique=True)
    kind: JudgingKind = enum_column(JudgingKind, length=20)
    job_id: int = Field(foreign_key="job.id", index=True)
    other_job_id: int | None = Field(default=None, foreign_key="job.id", index=True)
    seed: int
    # The judge model's job over the same tasks (the benchmark's rubric), when asked for.
    judge_job_id: int | None = Field(default=None, foreign_key="job.id")
    created_at: datetime = when_column()


class JudgedResponse(SQLModel, table=True):
    """One judging task: which accepted output(s) of which item a source item shows.

    ``swapped`` is set when a pairwise task shows the other job's response as
    response A (the order is randomised so position bias cancels out).
    """

    __tablename__ = "judged_response"

    id: int | None = Field(default=None, primary_key=True)
    source_item_id: int = Field(foreign_key="source_item.id", unique=True)
    judging_project_id: int = Field(foreign_key="judging_project.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    output_id: int = Field(foreign_key="output.id", index=True)
    other_output_id: int | None = Field(default=None, foreign_key="output.id")
    swapped: bool = False


class LabelStudioAccount(SQLModel, table=True):
    """A Sabha user's account in Label Studio: who made which annotation, and their credit.

    One per user on the community server, and one on the private server for
    a trusted annotator (``private``); the two servers' user ids never overlap.
    """

    __tablename__ = "labelstudio_account"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "private", name="uq_labelstudio_account_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id")
    private: bool = False
    labelstudio_user_id: int = Field(unique=True)
    labelstudio_username: str = Field(max_length=254)
    created_at: datetime = when_column()


class AnnotationAssignment(SQLModel, table=True):
    """An item handed to one annotator; at most once per item and annotator."""

    __tablename__ = "annotation_assignment"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "labelstudio_user_id", name="uq_annotation_assignment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    labelstudio_user_id: int = Field(index=True)
    assigned_at: datetime = when_column()
