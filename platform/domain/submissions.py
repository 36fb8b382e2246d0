"""Submissions of models by their developers, and the jobs they asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .columns import enum_column, json_column, status_check, text_column, when_column
from .statuses import SubmissionStatus

__all__ = ["Submission", "SubmissionJob"]


class Submission(SQLModel, table=True):
    """A user's request to evaluate a model on some benchmarks.

    ``counts_against_quota`` is cleared when a failure was the platform's
    fault, so it does not use up the user's quota.
    """

    __table_args__ = (status_check("status", SubmissionStatus, "ck_submission_status"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    status: SubmissionStatus = enum_column(
        SubmissionStatus, length=20, default=SubmissionStatus.QUEUED, index=True
    )
    license: str = Field(max_length=50)
    benchmarks: list[str] = json_column()
    decoding: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    estimate_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    reason: str | None = text_column(nullable=True)
    counts_against_quota: bool = True
    created_at: datetime = when_column()
    finished_at: datetime | None = when_column(nullable=True)


class SubmissionJob(SQLModel, table=True):
    """Which jobs a submission created or reused (a job can serve many submissions)."""

    __tablename__ = "submission_job"

    submission_id: int = Field(foreign_key="submission.id", primary_key=True)
    job_id: int = Field(foreign_key="job.id", primary_key=True, index=True)
