"""Scores: per-item statistics, scoring runs, scores, the leaderboard read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .columns import json_column, text_column, when_column

__all__ = [
    "PEOPLE_JUDGE",
    "CommunityScore",
    "LeaderboardEntry",
    "OutputStat",
    "Score",
    "ScoringRun",
]

# The ``judge`` of community scores from annotators' judgements (else a judge model's name).
PEOPLE_JUDGE = "people"


class OutputStat(SQLModel, table=True):
    """Per-item statistics of one metric for one output, computed once and reused."""

    __tablename__ = "output_stat"
    __table_args__ = (sa.UniqueConstraint("output_id", "metric"),)

    id: int | None = Field(default=None, primary_key=True)
    output_id: int = Field(foreign_key="output.id", index=True)
    metric: str = Field(max_length=30)
    stats: bytes = Field(sa_type=sa.LargeBinary, nullable=False)  # float64 values


class ScoringRun(SQLModel, table=True):
    """One scoring of a job's accepted outputs under one scoring identity.

    Rescoring with another identity adds a scoring run; earlier ones and
    their scores stay as they were.
    """

    __tablename__ = "scoring_run"
    __table_args__ = (sa.UniqueConstraint("job_id", "scoring_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    scoring_hash: str = Field(max_length=64, index=True)
    spec: dict[str, Any] = json_column()
    signatures: dict[str, Any] = json_column()
    n_resamples: int = 1000
    seed: int = 12345
    confidence: float = 0.95
    items: int = 0
    failed_items: int = 0
    failure_reasons: dict[str, Any] = json_column()
    pools: list[str] = json_column()
    overall_resamples: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    created_at: datetime = when_column()


class Score(SQLModel, table=True):
    """One metric of a scoring run, overall or for one group of a breakdown, with its 95% CI."""

    __table_args__ = (
        sa.UniqueConstraint(
            "scoring_run_id", "metric", "breakdown", "group", name="uq_score_run_metric_group"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    scoring_run_id: int = Field(foreign_key="scoring_run.id", index=True)
    metric: str = Field(max_length=30)
    breakdown: str = Field(max_length=30)  # "overall", "language", "region", "hazard"...
    group: str = Field(max_length=100)  # "all" for overall, else the group's value
    value: float
    ci_low: float
    ci_high: float
    n: int
    too_few: bool = False
    signature: str | None = text_column(nullable=True)
    created_at: datetime = when_column()


class LeaderboardEntry(SQLModel, table=True):
    """One ranked row of a benchmark's leaderboard, rebuilt when a scoring run lands.

    The read path of the site: one query per page, no joins, no ranking at
    request time.
    """

    __tablename__ = "leaderboard_entry"
    __table_args__ = (
        sa.UniqueConstraint("benchmark_id", "model_id"),
        sa.Index("ix_leaderboard_entry_benchmark_rank", "benchmark_id", "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    benchmark_id: int = Field(foreign_key="benchmark.id")
    model_id: int = Field(foreign_key="model.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    scoring_run_id: int = Field(foreign_key="scoring_run.id")
    position: int
    rank: int
    tied_with: list[str] = json_column()
    model: dict[str, Any] = json_column()
    cells: dict[str, Any] = json_column()
    finished_at: datetime | None = when_column(nullable=True)


class LeaderboardGeneration(SQLModel, table=True):
    """How many times a benchmark's leaderboard rows were rebuilt: the pages' cache key.

    A rebuild deletes and inserts the rows; on SQLite the new rows may take the
    ids of the old ones (and the same count), so the rows themselves cannot say
    that the board changed. This counter, raised in the rebuild's transaction,
    can.
    """

    __tablename__ = "leaderboard_generation"

    benchmark_id: int = Field(foreign_key="benchmark.id", primary_key=True)
    generation: int = Field(default=0)
    rebuilt_at: datetime = when_column()


class CommunityScore(SQLModel, table=True):
    """A score of one job from judgements of its answers, overall or for one group, with its CI.

    ``judge`` is ``"people"`` for annotators' judgements, else the judge
    model's name; ``n`` counts judged items and ``judgements`` the judgements
    behind them. A judge model's score carries its agreement with people
    (Krippendorff's alpha) on the items both judged, and over how many items.
    """

    __tablename__ = "community_score"
    __table_args__ = (
        sa.UniqueConstraint(
            "job_id", "judge", "metric", "breakdown", "group", name="uq_community_score"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    judge: str = Field(default=PEOPLE_JUDGE, max_length=200)
    metric: str = Field(max_length=30)
    breakdown: str = Field(max_length=30)
    group: str = Field(max_length=100)
    value: float
    ci_low: float
    ci_high: float
    n: int
    judgements: int
    agreement: float | None = None
    agreement_items: int = 0
    updated_at: datetime = when_column()
