"""Submissions and job statuses: what a model developer sends and reads back (JSON API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ._base import InputShape, UtcTime
from ._generation import DecodingOverrides, ModelSource

__all__ = [
    "JobStatusPublic",
    "ShardStateName",
    "ShardStatePublic",
    "SubmissionCreate",
    "SubmissionJobPublic",
    "SubmissionPublic",
    "SubmissionStatusPublic",
]

BenchmarkName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
JobStatusName = Literal["queued", "running", "completed", "failed", "cancelled"]
ShardStateName = Literal["queued", "leased", "running", "done", "failed", "cancelled"]


class SubmissionCreate(InputShape):
    """What a model developer submits."""

    model: ModelSource
    benchmarks: list[BenchmarkName] = Field(
        min_length=1, max_length=20, description="Benchmark names, e.g. kisan-advisory"
    )
    decoding: DecodingOverrides = Field(
        default_factory=DecodingOverrides,
        description="Overrides within the benchmark's bounds; any override is another "
        "generation identity, scored but not ranked beside the benchmark's own runs",
    )
    license: str = Field(min_length=1, max_length=50, description="The model's license")


class ShardStatePublic(BaseModel):
    """One shard of a job as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="The shard's position in the job, from 0")
    items: int = Field(description="How many items it holds")
    state: ShardStateName
    attempts: int = Field(description="How many times a pool leased it")
    pool: str | None = Field(
        default=None, description="The pool holding it now, or whose results count"
    )
    reason: str | None = Field(
        default=None, description="Why the last attempt stopped, or why the job failed"
    )


class JobStatusPublic(BaseModel):
    """A job (one model on one benchmark) with each shard's state."""

    model_config = ConfigDict(frozen=True)

    id: int
    model: str
    benchmark: str
    status: JobStatusName
    reason: str | None = Field(default=None, description="Why the job failed, if it did")
    created_at: UtcTime | None
    started_at: UtcTime | None
    finished_at: UtcTime | None
    shards: int
    completed_shards: int
    items: int
    completed_items: int
    run_url: str | None = Field(default=None, description="The provenance page of the finished run")
    shard_states: list[ShardStatePublic]


class SubmissionJobPublic(BaseModel):
    """One benchmark of a submission and its job."""

    model_config = ConfigDict(frozen=True)

    benchmark: str
    job_id: int
    status: JobStatusName


class SubmissionPublic(BaseModel):
    """A submission as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    id: int
    model: str
    status: JobStatusName
    reason: str | None = None
    license: str
    benchmarks: list[str]
    decoding: dict[str, Any]
    estimate_bytes: int | None
    counts_against_quota: bool
    created_at: datetime
    finished_at: datetime | None = None
    status_url: str
    jobs: list[SubmissionJobPublic]


class SubmissionStatusPublic(SubmissionPublic):
    """A submission with each job's shard states."""

    job_states: list[JobStatusPublic] = Field(
        description="Per benchmark: the job and each shard's state"
    )
