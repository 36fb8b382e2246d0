"""The domain model: SQLModel tables shared by every part of Sabha.

Designed for the whole roadmap: datasets and their immutable versions feed
benchmarks; a job is one model on one benchmark with fixed decoding
parameters; a job is cut into shards (the unit a worker pool leases later);
each item's output is stored as soon as its batch finishes; scores carry their
confidence interval and metric signature. Users, annotations and worker pools
arrive in later migrations as new tables that point at these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "Benchmark",
    "Dataset",
    "DatasetVersion",
    "Item",
    "Job",
    "JobStatus",
    "Model",
    "Output",
    "Score",
    "Shard",
    "ShardStatus",
    "id_of",
    "utcnow",
]


def id_of(row: SQLModel) -> int:
    """The primary key of a row that has been flushed (SQLModel types it as optional)."""
    value = getattr(row, "id", None)
    if not isinstance(value, int):
        raise ValueError(f"{type(row).__name__} has no id yet; flush the session first")
    return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _json(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=sa.JSON, nullable=nullable)


def _when(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


def _text(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=sa.Text, nullable=nullable)


class JobStatus:
    """Values of ``Job.status``."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ShardStatus:
    """Values of ``Shard.status``."""

    QUEUED = "queued"
    LEASED = "leased"
    COMPLETED = "completed"


class Dataset(SQLModel, table=True):
    """A named dataset; its content lives in immutable versions."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    title: str = Field(max_length=200)
    license: str = Field(max_length=50)
    created_at: datetime = _when()


class DatasetVersion(SQLModel, table=True):
    """One version of a dataset, named by the hash of its content.

    Once ``released_at`` is set, neither the version nor its items may change.
    """

    __tablename__ = "dataset_version"

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    content_hash: str = Field(unique=True, max_length=64)
    item_count: int
    languages: list[str] = _json()
    artifact_uri: str | None = Field(default=None, max_length=1000)
    card_markdown: str | None = _text(nullable=True)
    created_at: datetime = _when()
    released_at: datetime | None = _when(nullable=True)


class Item(SQLModel, table=True):
    """One evaluation item of a dataset version."""

    __table_args__ = (sa.UniqueConstraint("dataset_version_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    key: str = Field(max_length=100)
    language: str = Field(max_length=35, index=True)
    dialect: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=10)
    split: str = Field(max_length=20)
    input: dict[str, Any] = _json()
    reference: str | None = _text(nullable=True)
    label: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = _json()


class Benchmark(SQLModel, table=True):
    """A dataset version plus task type, prompt template and metrics.

    A changed definition is a new row (new ``definition_hash``) with the same
    name; the newest row of a name is the current benchmark.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=100)
    title: str = Field(max_length=200)
    description: str = _text()
    task: str = Field(max_length=30)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    prompt_template: str = _text()
    system_prompt: str | None = _text(nullable=True)
    labels: list[str] = _json()
    metrics: list[str] = _json()
    primary_metric: str = Field(max_length=30)
    breakdowns: list[str] = _json()
    languages: list[str] = _json()
    decoding: dict[str, Any] = _json()
    definition_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _when()


class Model(SQLModel, table=True):
    """A model to evaluate: a hub repository at a pinned revision, or a local folder."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    source: str = Field(max_length=10)  # "hub" or "local"
    repo_id: str | None = Field(default=None, max_length=300)
    revision: str | None = Field(default=None, max_length=100)
    path: str | None = Field(default=None, max_length=1000)
    smoke_test: bool = False
    description: str | None = _text(nullable=True)
    created_at: datetime = _when()


class Job(SQLModel, table=True):
    """One model evaluated on one benchmark with fixed decoding parameters."""

    __table_args__ = (sa.UniqueConstraint("model_id", "benchmark_id", "decoding_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    benchmark_id: int = Field(foreign_key="benchmark.id", index=True)
    decoding: dict[str, Any] = _json()
    decoding_hash: str = Field(max_length=64)
    status: str = Field(default=JobStatus.QUEUED, max_length=20, index=True)
    error: str | None = _text(nullable=True)
    created_at: datetime = _when()
    started_at: datetime | None = _when(nullable=True)
    finished_at: datetime | None = _when(nullable=True)


class Shard(SQLModel, table=True):
    """A slice of a job's items: the unit of work a worker pool leases."""

    __table_args__ = (sa.UniqueConstraint("job_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    index: int
    item_ids: list[int] = _json()
    status: str = Field(default=ShardStatus.QUEUED, max_length=20, index=True)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _when(nullable=True)
    executed_on: dict[str, Any] | None = _json(nullable=True)
    finished_at: datetime | None = _when(nullable=True)


class Output(SQLModel, table=True):
    """What a model produced for one item (``replica`` > 0: a verification rerun)."""

    __table_args__ = (sa.UniqueConstraint("job_id", "item_id", "replica"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    shard_id: int = Field(foreign_key="shard.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    replica: int = 0
    attempt: int = 1
    prompt: str = _text()
    text: str = _text()
    finish_reason: str | None = Field(default=None, max_length=20)
    num_tokens: int = 0
    created_at: datetime = _when()


class Score(SQLModel, table=True):
    """One metric of a job, overall or for one group of a breakdown, with its 95% CI."""

    __table_args__ = (sa.UniqueConstraint("job_id", "metric", "breakdown", "group"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    metric: str = Field(max_length=30)
    breakdown: str = Field(max_length=30)  # "overall", "language", "region", "hazard"...
    group: str = Field(max_length=100)  # "all" for overall, else the group's value
    value: float
    ci_low: float
    ci_high: float
    n: int
    signature: str | None = _text(nullable=True)
    created_at: datetime = _when()
