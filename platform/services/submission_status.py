"""A submission's status, derived from its jobs; what its owner reads.

A submission is ``queued`` until one of its jobs starts, ``running`` while
any job runs (a failed job fails it only once every job has stopped, so it
can still be cancelled), ``completed`` when every job is, ``failed`` once
every job stopped and one failed, and ``cancelled`` when its submitter said
so. A failure that is not the model's own (vLLM could not load it) gives the
submission back to the submitter's daily quota.

Reads never write: a status page derives the status from the jobs in a
read-only session and takes no write lock (on SQLite a status page answers
while a writer holds the database). The stored status catches up in write
transactions (:func:`record_submission_state`: a new submission's quota
check, a cancel).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    Model,
    Shard,
    ShardRun,
    Submission,
    SubmissionJob,
    SubmissionStatus,
    as_utc,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError
from sabha.platform.wire import SubmissionJobPublic, SubmissionPublic, SubmissionStatusPublic

from .status import job_status

__all__ = [
    "SubmissionState",
    "find_owned_submission",
    "get_submission",
    "list_submissions",
    "record_submission_state",
    "shards_done",
    "submission_jobs",
    "submission_public",
    "submission_state",
]

# The model's own failure (vLLM cannot load it) counts against the quota; any
# other failure (a pool died, a lease expired) is the platform's.
_MODEL_FAULT = re.compile(r"could not load the model")
_STOPPED = (SubmissionStatus.COMPLETED, SubmissionStatus.FAILED)


@dataclass(frozen=True)
class SubmissionState:
    """What a submission's jobs say about it now."""

    status: SubmissionStatus
    reason: str | None
    counts_against_quota: bool
    finished_at: datetime | None


def submission_jobs(session: Session, submission_id: int) -> list[tuple[Job, str]]:
    """A submission's jobs with their benchmarks' names, in the order they were made."""
    rows = session.exec(
        select(Job, Benchmark.name)
        .join(SubmissionJob, col(SubmissionJob.job_id) == Job.id)
        .join(Benchmark, col(Benchmark.id) == Job.benchmark_id)
        .where(SubmissionJob.submission_id == submission_id)
        .order_by(col(Job.id))
    ).all()
    return [(job, name) for job, name in rows]


def submission_state(
    session: Session, submission: Submission, jobs: Sequence[Job]
) -> SubmissionState:
    """The state of ``submission`` that its ``jobs`` imply (reads only)."""
    stored = SubmissionState(
        submission.status,
        submission.reason,
        submission.counts_against_quota,
        as_utc(submission.finished_at) if submission.finished_at else None,
    )
    if submission.status == SubmissionStatus.CANCELLED or not jobs:
        return stored
    statuses = {job.status for job in jobs}
    counts = submission.counts_against_quota
    if statuses == {JobStatus.COMPLETED}:
        status, reason = SubmissionStatus.COMPLETED, None
    elif JobStatus.FAILED in statuses and not statuses & {JobStatus.QUEUED, JobStatus.RUNNING}:
        errors = [job.error for job in jobs if job.status == JobStatus.FAILED and job.error]
        status, reason = SubmissionStatus.FAILED, "; ".join(dict.fromkeys(errors)) or "failed"
        if not any(_MODEL_FAULT.search(e) for e in errors):
            counts = False
    elif statuses & {JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED}:
        status, reason = SubmissionStatus.RUNNING, None
    else:
        status, reason = SubmissionStatus.QUEUED, None
    finished = stored.finished_at
    if finished is None and status in _STOPPED:
        finished = _last_stop(session, submission, jobs)
    return SubmissionState(status, reason, counts, finished)


def _last_stop(session: Session, submission: Submission, jobs: Sequence[Job]) -> datetime | None:
    """When the last of the jobs stopped, as far as the database knows (not before the
    submission: it may have joined finished jobs)."""
    moments = [as_utc(job.finished_at) for job in jobs if job.finished_at]
    if not moments:  # a failed job records no time of its own: its last run's end
        last_run = session.exec(
            select(func.max(ShardRun.finished_at)).where(
                col(ShardRun.job_id).in_([id_of(job) for job in jobs])
            )
        ).one()
        moments = [as_utc(last_run)] if last_run else []
    return max([*moments, as_utc(submission.created_at)]) if moments else None


def record_submission_state(session: Session, submission: Submission) -> SubmissionState:
    """Store the state the submission's jobs imply (inside a write transaction)."""
    jobs = [job for job, _ in submission_jobs(session, id_of(submission))]
    state = submission_state(session, submission, jobs)
    changed = (
        submission.status != state.status
        or submission.reason != state.reason
        or submission.counts_against_quota != state.counts_against_quota
    )
    if changed:
        submission.status = state.status
        submission.reason = state.reason
        submission.counts_against_quota = state.counts_against_quota
        if state.status in _STOPPED and submission.finished_at is None:
            submission.finished_at = state.finished_at or utcnow()
        session.add(submission)
        session.flush()
    return state


def submission_public(session: Session, submission: Submission) -> SubmissionPublic:
    """The submission as its owner sees it, with the state its jobs imply (reads only)."""
    jobs = submission_jobs(session, id_of(submission))
    state = submission_state(session, submission, [job for job, _ in jobs])
    model = session.get(Model, submission.model_id)
    return SubmissionPublic(
        id=id_of(submission),
        model=model.name if model else "",
        status=state.status.value,
        reason=state.reason,
        license=submission.license,
        benchmarks=list(submission.benchmarks),
        decoding=dict(submission.decoding),
        estimate_bytes=submission.estimate_bytes,
        counts_against_quota=state.counts_against_quota,
        created_at=as_utc(submission.created_at),
        finished_at=state.finished_at,
        status_url=f"/api/v1/submissions/{submission.id}",
        jobs=[
            SubmissionJobPublic(benchmark=name, job_id=id_of(job), status=job.status)  # type: ignore[arg-type]
            for job, name in jobs
        ],
    )


def find_owned_submission(
    session: Session, submission_id: int, user_id: int, is_admin: bool
) -> Submission:
    """The submission ``submission_id`` of this user (any user's, for an admin).

    Raises:
        NotFoundError: no such submission of the caller's.
    """
    submission = session.get(Submission, submission_id)
    if submission is None or (submission.user_id != user_id and not is_admin):
        # Someone else's submission reads as missing: ids are not secrets, but
        # its existence is not the caller's business.
        raise NotFoundError(
            f"There is no submission {submission_id} of yours.",
            "List yours with GET /api/v1/submissions.",
        )
    return submission


def list_submissions(db: Engine, user_id: int, limit: int = 100) -> list[SubmissionPublic]:
    """The user's submissions, newest first."""
    with Session(db) as session:
        rows = session.exec(
            select(Submission)
            .where(Submission.user_id == user_id)
            .order_by(col(Submission.id).desc())
            .limit(limit)
        ).all()
        return [submission_public(session, s) for s in rows]


def shards_done(db: Engine, job_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Each job's shards with accepted results, and all its shards: ``{job_id: (done, all)}``.

    One grouped query, whatever the number of jobs (a list page's progress bars).
    """
    if not job_ids:
        return {}
    with Session(db) as session:
        rows = session.exec(
            select(Shard.job_id, func.count(col(Shard.accepted_run_id)), func.count())
            .where(col(Shard.job_id).in_(list(job_ids)))
            .group_by(col(Shard.job_id))
        ).all()
    return {int(job_id): (int(done), int(total)) for job_id, done, total in rows}


def get_submission(
    db: Engine, submission_id: int, user_id: int, is_admin: bool = False
) -> SubmissionStatusPublic:
    """A submission with each benchmark's job and shard states (owner or admin).

    Raises:
        NotFoundError: no such submission of the caller's.
    """
    with Session(db) as session:
        submission = find_owned_submission(session, submission_id, user_id, is_admin)
        public = submission_public(session, submission)
        states = [job_status(session, job.job_id) for job in public.jobs]
        return SubmissionStatusPublic(**public.model_dump(), job_states=states)
