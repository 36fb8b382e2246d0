"""What a job's owner sees: each shard's state and, on failure, a readable reason.

Shard states: ``queued`` (waiting for a pool), ``leased`` (a pool took it and
has not reported yet), ``running`` (the pool's heartbeats arrive), ``done``
(its outputs are accepted), ``failed`` (the job failed before the shard was
done), ``cancelled`` (the job was cancelled). No item text appears here, so
private splits never leak through it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel import Session

from sabha.platform.domain import Benchmark, Job, JobStatus, Model, ShardStatus
from sabha.platform.errors import NotFoundError

from .queue import job_progress, shard_states

__all__ = ["JobStatusPublic", "ShardStatePublic", "ShardStateName", "job_status"]


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; Sabha stores UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]
ShardStateName = Literal["queued", "leased", "running", "done", "failed", "cancelled"]


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
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
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


def _shard_state(status: str, running: bool, job_status: str) -> ShardStateName:
    if status == ShardStatus.COMPLETED:
        return "done"
    if status == ShardStatus.LEASED:
        return "running" if running else "leased"
    if job_status == JobStatus.FAILED:
        return "failed"
    if job_status == JobStatus.CANCELLED:
        return "cancelled"
    return "queued"


def job_status(session: Session, job_id: int) -> JobStatusPublic:
    """The status of job ``job_id`` with each shard's state.

    Raises:
        NotFoundError: no such job.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(
            f"There is no job {job_id}.", "Take the job id from the submission's status."
        )
    model = session.get(Model, job.model_id)
    benchmark = session.get(Benchmark, job.benchmark_id)
    progress = job_progress(session, job_id)
    shards = []
    for state in shard_states(session, job_id):
        live = [pool for _, status, pool in state.runs if status == "leased"]
        reason = state.reason
        if reason is None and state.status != ShardStatus.COMPLETED and job.status == "failed":
            reason = job.error
        shards.append(
            ShardStatePublic(
                index=state.index,
                items=state.items,
                state=_shard_state(state.status, state.running, job.status),
                attempts=len(state.runs),
                pool=state.accepted_pool or (live[-1] if live else None),
                reason=reason,
            )
        )
    return JobStatusPublic(
        id=job_id,
        model=model.name if model else "",
        benchmark=benchmark.name if benchmark else "",
        status=job.status,  # type: ignore[arg-type]
        reason=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        shards=progress.shards,
        completed_shards=progress.completed_shards,
        items=progress.items,
        completed_items=progress.completed_items,
        run_url=f"/runs/{job_id}" if job.status == JobStatus.COMPLETED else None,
        shard_states=shards,
    )
