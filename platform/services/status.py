"""What a job's owner sees: each shard's state and, on failure, a readable reason; who may.

Shard states: ``queued`` (waiting for a pool), ``leased`` (a pool took it and
has not reported yet), ``running`` (the pool's heartbeats arrive), ``done``
(its outputs are accepted), ``failed`` (the job failed before the shard was
done), ``cancelled`` (the job was cancelled). No item text appears here, so
private splits never leak through it.

A job of a submission is private to its submitters (and admins) until it is
completed: its model may be unpublished, and a failed or cancelled one stays
private for good. Anyone else is told the job does not exist, exactly as for
an id that was never used, so ids cannot be enumerated. Jobs that no
submission made (a maintainer's ``sabha eval``) are public.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    Model,
    RunStatus,
    ShardStatus,
    Submission,
    SubmissionJob,
)
from sabha.platform.errors import NotFoundError
from sabha.platform.wire import JobStatusPublic, ShardStateName, ShardStatePublic

from .queue import job_progress, shard_states

__all__ = [
    "check_run_visible",
    "job_status",
    "job_visible_to",
    "visible_job_status",
]


def _shard_state(status: ShardStatus, running: bool, job_status: JobStatus) -> ShardStateName:
    if status == ShardStatus.COMPLETED:
        return "done"
    if status == ShardStatus.LEASED:
        return "running" if running else "leased"
    if job_status == JobStatus.FAILED:
        return "failed"
    if job_status == JobStatus.CANCELLED:
        return "cancelled"
    return "queued"


def job_visible_to(session: Session, job_id: int, user_id: int | None, is_admin: bool) -> bool:
    """Whether job ``job_id`` exists and may be shown to this viewer (see the module's rule).

    Args:
        user_id: The viewer (None: nobody signed in).
        is_admin: Whether the viewer acts as an admin.
    """
    job = session.get(Job, job_id)
    if job is None:
        return False
    if is_admin or job.status == JobStatus.COMPLETED:
        return True
    submitters = session.exec(
        select(Submission.user_id)
        .join(SubmissionJob, col(SubmissionJob.submission_id) == Submission.id)
        .where(SubmissionJob.job_id == job_id)
    ).all()
    return not submitters or user_id in submitters


def _no_job(job_id: int) -> NotFoundError:
    return NotFoundError(
        f"There is no job {job_id}.", "Take the job id from the submission's status."
    )


def visible_job_status(
    session: Session, job_id: int, user_id: int | None, is_admin: bool
) -> JobStatusPublic:
    """:func:`job_status` for a viewer who may see the job.

    Raises:
        NotFoundError: no such job, or one private to someone else (the same answer).
    """
    if not job_visible_to(session, job_id, user_id, is_admin):
        raise _no_job(job_id)
    return job_status(session, job_id)


def check_run_visible(session: Session, job_id: int, user_id: int | None, is_admin: bool) -> None:
    """Refuse a run page the viewer may not see, as if the run did not exist.

    Raises:
        NotFoundError: no such run, or one private to someone else (the same answer).
    """
    if not job_visible_to(session, job_id, user_id, is_admin):
        raise NotFoundError(f"There is no run {job_id}.", "Pick a run from a leaderboard.")


def job_status(session: Session, job_id: int) -> JobStatusPublic:
    """The status of job ``job_id`` with each shard's state (for anyone: see
    :func:`visible_job_status`).

    Raises:
        NotFoundError: no such job.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise _no_job(job_id)
    model = session.get(Model, job.model_id)
    benchmark = session.get(Benchmark, job.benchmark_id)
    progress = job_progress(session, job_id)
    shards = []
    for state in shard_states(session, job_id):
        live = [pool for _, status, pool in state.runs if status == RunStatus.LEASED]
        reason = state.reason
        unfinished = state.status != ShardStatus.COMPLETED
        if reason is None and unfinished and job.status == JobStatus.FAILED:
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
        run_url=f"/jobs/{job_id}" if job.status == JobStatus.COMPLETED else None,
        shard_states=shards,
    )
