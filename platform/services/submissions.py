"""Model submissions: validate, estimate, queue and cancel.

A submission is checked completely before anything is queued: the request's
format (pydantic), the benchmarks, the decoding overrides against each
benchmark's bounds, the model source (hub commit or, where the server allows
it, a local folder), its ``config.json`` and memory estimate against the pools
the platform knows, the license, and the user's daily quota. Then the model
is registered (or found), one job per benchmark is found or created through
the queue, and the submission remembers its jobs. A job serves every
submission that asks for the same model on the same generation identity.

The request and answer shapes are ``wire``'s (``SubmissionCreate``,
``SubmissionPublic``); following a submission (its status, derived from its
jobs, read without writing) is ``submission_status``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select, update

from sabha.platform.benchmarks import FieldProblems, apply_decoding_overrides
from sabha.platform.catalog import (
    ModelNameTaken,
    check_model_directory,
    find_or_add_model,
    local_model_revision,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    JobStatus,
    Model,
    RunStatus,
    Shard,
    ShardRun,
    ShardStatus,
    Submission,
    SubmissionJob,
    SubmissionStatus,
    as_utc,
    id_of,
    utcnow,
)
from sabha.platform.errors import SabhaError
from sabha.platform.settings import Settings
from sabha.platform.wire import (
    HubModelSource,
    LocalModelSource,
    ModelSource,
    SubmissionCreate,
    SubmissionPublic,
)

from .budgets import load_token_counter
from .estimate import check_fits, estimate_memory, known_pool_sizes, read_hub_config
from .estimate import read_local_config as _read_local_config
from .queue import create_job
from .submission_status import (
    find_owned_submission,
    record_submission_state,
    submission_jobs,
    submission_public,
)

__all__ = [
    "QuotaExceeded",
    "SubmissionInvalid",
    "cancel_submission",
    "create_submission",
    "local_pool_memory_bytes",
]


class SubmissionInvalid(SabhaError):
    """A submission failed validation; ``field_problems`` names each field and its fix."""

    http_status = 422
    problem_type = "validation"

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__(
            f"The submission has {len(problems)} problem(s): "
            + "; ".join(f"{field}: {message}" for field, message, _ in problems),
            "Correct the fields listed and submit again.",
        )
        self.field_problems = problems


class QuotaExceeded(SabhaError):
    """The user made as many submissions in the last 24 hours as the server allows."""

    http_status = 429
    problem_type = "quota"


def local_pool_memory_bytes(settings: Settings) -> int:
    """The local pool's memory: ``SABHA_LOCAL_POOL_MEMORY_GB``, else detected."""
    from .estimate import detect_local_memory_bytes

    if settings.local_pool_memory_gb is None:
        return detect_local_memory_bytes()
    return int(settings.local_pool_memory_gb * 1e9)


ConfigReader = Callable[[ModelSource], dict[str, Any]]


def _read_config(source: ModelSource) -> dict[str, Any]:
    if isinstance(source, HubModelSource):
        return read_hub_config(source.repo_id, source.revision)
    return _read_local_config(Path(source.path))


def _check_quota(session: Session, user_id: int, limit: int) -> None:
    since = utcnow() - timedelta(hours=24)
    rows = session.exec(
        select(Submission).where(Submission.user_id == user_id, col(Submission.created_at) >= since)
    ).all()
    for submission in rows:
        record_submission_state(session, submission)
    used = sum(1 for s in rows if s.counts_against_quota)
    if used >= limit:
        oldest = min(as_utc(s.created_at) for s in rows if s.counts_against_quota) if used else None
        when = (
            f" The next one is possible at {oldest + timedelta(hours=24):%Y-%m-%d %H:%M} UTC."
            if oldest
            else ""
        )
        raise QuotaExceeded(
            f"You made {used} submissions in the last 24 hours; the limit is {limit}.{when}",
            "Wait, or cancel a queued submission that is not needed.",
        )


def _benchmark_problems(
    session: Session, request: SubmissionCreate
) -> tuple[list[Benchmark], list[tuple[str, str, str]]]:
    problems: list[tuple[str, str, str]] = []
    benchmarks: list[Benchmark] = []
    seen: set[str] = set()
    current = {
        b.name: b
        for b in session.exec(select(Benchmark).where(col(Benchmark.is_current).is_(True)))
    }
    for index, name in enumerate(request.benchmarks):
        field = f"body.benchmarks.{index}"
        if name in seen:
            problems.append((field, f"{name!r} is listed twice", "List each benchmark once."))
            continue
        seen.add(name)
        benchmark = current.get(name)
        if benchmark is None:
            known = ", ".join(sorted(current)) or "(none loaded)"
            problems.append((field, f"there is no benchmark {name!r}", f"Use one of: {known}."))
            continue
        try:
            apply_decoding_overrides(benchmark.decoding, request.decoding)  # create_job's, checked
        except FieldProblems as exc:
            for key, message in exc.problems:
                problems.append(
                    (
                        f"body.decoding.{key}",
                        f"{message} ({name})",
                        f"Use at most {benchmark.decoding.get('max_tokens')}, or leave it out.",
                    )
                )
        benchmarks.append(benchmark)
    if not request.license.strip():
        problems.append(("body.license", "is empty", "Give the model's license, e.g. apache-2.0."))
    return benchmarks, problems


def _find_or_add_model(session: Session, source: ModelSource, digest: str | None) -> Model:
    try:
        return find_or_add_model(session, source, digest)
    except ModelNameTaken as exc:
        message = f"the name {source.name!r} belongs to another model"
        raise SubmissionInvalid([("body.model.name", message, exc.hint or "")]) from exc


def create_submission(
    db: Engine,
    settings: Settings,
    user_id: int,
    request: SubmissionCreate,
    read_config: ConfigReader = _read_config,
) -> SubmissionPublic:
    """Validate a submission completely, then queue its jobs.

    Args:
        db: The database.
        settings: Quota, local-model policy, local pool memory and shard size.
        user_id: The submitting user.
        request: The submission.
        read_config: Reads the model's ``config.json`` (tests pass a local reader).

    Raises:
        QuotaExceeded: the user's daily submissions are used up (429).
        SubmissionInvalid: a field is wrong; each problem names the field and the fix (422).
        ModelTooLarge: the model fits no pool (422); the message gives both sizes.
    """
    with session_scope(db) as session:
        _check_quota(session, user_id, settings.submissions_per_day)
    with Session(db) as session:  # read-only checks; nothing is written yet
        benchmarks, problems = _benchmark_problems(session, request)
    source = request.model
    digest = None
    if isinstance(source, LocalModelSource):
        path = Path(source.path)
        if not settings.allow_local_models:
            problems.append(
                (
                    "body.model.source",
                    "this server does not take model folders on its own disk",
                    "Submit a hub repository at a commit (source: hub).",
                )
            )
        elif not path.is_absolute():
            problems.append(
                ("body.model.path", "is not an absolute path", "Give the folder's full path.")
            )
        else:
            try:
                check_model_directory(path)
            except SabhaError as exc:
                problems.append(("body.model.path", exc.message, exc.hint or ""))
    if problems:
        raise SubmissionInvalid(problems)
    try:
        config = read_config(source)
    except SabhaError as exc:
        raise SubmissionInvalid([("body.model", exc.message, exc.hint or "")]) from exc
    longest = max(b.max_model_len for b in benchmarks)
    estimate = estimate_memory(config, longest)
    with Session(db) as session:
        pools = known_pool_sizes(
            session, local_pool_memory_bytes(settings), settings.replication_new_pool_shards
        )
    check_fits(estimate, pools, f"Model {source.target} at {longest} tokens")
    if isinstance(source, LocalModelSource):
        digest = local_model_revision(Path(source.path).resolve())  # outside any transaction
    # Read outside any transaction (the tokenizer may come from the hub).
    counter = (
        load_token_counter(source) if any(b.decoding.get("budget") for b in benchmarks) else None
    )
    with session_scope(db) as session:
        _check_quota(session, user_id, settings.submissions_per_day)  # a race since
        model = _find_or_add_model(session, source, digest)
        submission = Submission(
            user_id=user_id,
            model_id=id_of(model),
            license=request.license.strip(),
            benchmarks=[b.name for b in benchmarks],
            decoding=request.decoding.model_dump(exclude_none=True),
            estimate_bytes=estimate.total_bytes,
        )
        session.add(submission)
        session.flush()
        for benchmark in benchmarks:
            job, _ = create_job(
                session,
                model,
                benchmark,
                settings.shard_size,
                request.decoding,
                token_counter=counter,
            )
            if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                job.status = JobStatus.QUEUED  # accepted shards are kept
                job.error = None
            # Placement by memory: only pools whose engines hold this are leased its shards.
            job.memory_bytes = estimate_memory(config, benchmark.max_model_len).total_bytes
            session.add(SubmissionJob(submission_id=id_of(submission), job_id=id_of(job)))
        session.flush()
        record_submission_state(session, submission)
        return submission_public(session, submission)


def cancel_submission(
    db: Engine, submission_id: int, user_id: int, is_admin: bool = False
) -> SubmissionPublic:
    """Cancel a submission: its jobs stop unless another live submission shares them.

    Leases on a cancelled job are released (the pools' results will be refused)
    and its unfinished shards are not leased again. Cancelling a finished or
    cancelled submission changes nothing.

    Raises:
        NotFoundError: no such submission of the caller's.
    """
    with session_scope(db) as session:
        submission = find_owned_submission(session, submission_id, user_id, is_admin)
        record_submission_state(session, submission)
        if submission.status in (
            SubmissionStatus.COMPLETED,
            SubmissionStatus.FAILED,
            SubmissionStatus.CANCELLED,
        ):
            return submission_public(session, submission)
        now = utcnow()
        for job, _ in submission_jobs(session, id_of(submission)):
            if job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
                continue
            if _shared_with_live_submission(session, id_of(job), id_of(submission)):
                continue
            job.status = JobStatus.CANCELLED
            job.finished_at = now
            job.error = "cancelled by the submitter"
            session.add(job)
            for run in session.exec(
                select(ShardRun).where(
                    ShardRun.job_id == job.id, ShardRun.status == RunStatus.LEASED
                )
            ):
                run.status = RunStatus.RELEASED
                run.finished_at = now
                run.error = "the submission was cancelled"
                session.add(run)
            session.exec(
                update(Shard)
                .where(col(Shard.job_id) == job.id, col(Shard.status) == ShardStatus.LEASED)
                .values(status=ShardStatus.QUEUED)
            )
        submission.status = SubmissionStatus.CANCELLED
        submission.reason = "cancelled by the submitter"
        submission.finished_at = now
        session.add(submission)
        session.flush()
        return submission_public(session, submission)


def _shared_with_live_submission(session: Session, job_id: int, submission_id: int) -> bool:
    others = session.exec(
        select(func.count())
        .select_from(SubmissionJob)
        .join(Submission, col(Submission.id) == SubmissionJob.submission_id)
        .where(
            SubmissionJob.job_id == job_id,
            SubmissionJob.submission_id != submission_id,
            col(Submission.status).in_([SubmissionStatus.QUEUED, SubmissionStatus.RUNNING]),
        )
    ).one()
    return int(others) > 0
