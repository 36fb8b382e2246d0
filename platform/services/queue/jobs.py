"""Jobs: creating a job and its shards, finishing and scoring complete jobs."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import apply_decoding_overrides, generation_identity
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Benchmark,
    DatasetVersion,
    Item,
    Job,
    JobStatus,
    Model,
    Shard,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError
from sabha.platform.wire import DecodingOverrides, DecodingParams

from ..budgets import TokenCounter, bytes_counter, resolve_answer_budgets
from ..verification import VerificationPolicy, audit_job
from .common import (
    EVALUATION_SPLIT,
    LEASABLE_JOBS,
    SHARD_SIZE,
    job_complete,
)

_log = logging.getLogger(__name__)

__all__ = [
    "create_job",
    "finalize_job",
    "finish_complete_jobs",
]


def create_job(
    session: Session,
    model: Model,
    benchmark: Benchmark,
    shard_size: int | None = None,
    overrides: DecodingOverrides | None = None,
    token_counter: TokenCounter | None = None,
) -> tuple[Job, bool]:
    """Find or create the job of ``model`` on the benchmark's generation identity.

    A new job is cut into shards of at most ``shard_size`` (default
    ``SHARD_SIZE``) items of the evaluated split. This is the one place a
    job's decoding is made: the benchmark's (its ``DecodingSpec``) with a
    submission's ``overrides`` applied, which, when they change it, is
    another generation identity and so another job. A decoding ``budget``
    becomes the new job's per-language limits, measured with
    ``token_counter`` (load it with ``budgets.load_token_counter`` before the
    transaction; None counts bytes). The job stores a ``wire.DecodingParams``.

    Returns:
        The job, and whether it was created now.

    Raises:
        FieldProblems: ``overrides`` outside the benchmark's bounds.
    """
    decoding = apply_decoding_overrides(benchmark.decoding, overrides)
    generation_hash = benchmark.generation_hash
    if decoding != benchmark.decoding:
        dataset = session.get(DatasetVersion, benchmark.dataset_version_id)
        assert dataset is not None
        generation_hash = generation_identity(
            dataset.content_hash,
            benchmark.prompt_template,
            benchmark.system_prompt,
            decoding,
            benchmark.chat_template,
            benchmark.max_model_len,
        )
    live = select(Job).where(
        Job.model_id == model.id,
        Job.generation_hash == generation_hash,
        col(Job.superseded_by_id).is_(None),
    )
    job = session.exec(live).first()
    if job is not None:
        return job, False
    try:
        # A savepoint: when another process creates the same job at the same
        # moment (two `sabha eval` on one database), the unique constraint
        # refuses ours and we use theirs instead of failing.
        with session.begin_nested():
            job = _new_job(
                session, model, benchmark, shard_size, decoding, generation_hash, token_counter
            )
    except sa.exc.IntegrityError:
        job = session.exec(live).first()
        if job is None:
            raise
        return job, False
    return job, True


def _new_job(
    session: Session,
    model: Model,
    benchmark: Benchmark,
    shard_size: int | None,
    decoding: dict[str, Any],
    generation_hash: str,
    token_counter: TokenCounter | None,
) -> Job:
    generation: dict[str, Any] = {
        "dataset_version_id": benchmark.dataset_version_id,
        "prompt_template": benchmark.prompt_template,
        "system_prompt": benchmark.system_prompt,
        "chat_template": benchmark.chat_template,
        "max_model_len": benchmark.max_model_len,
    }
    if decoding.get("budget") is not None:
        # The rule is in the generation identity; its numbers for this model are the job's.
        decoding, generation["answer_budget"] = resolve_answer_budgets(
            session,
            benchmark.dataset_version_id,
            decoding,
            token_counter or bytes_counter("no tokenizer was given"),
        )
    DecodingParams.model_validate(decoding)  # what every lease of the job will carry
    job = Job(
        model_id=id_of(model),
        benchmark_id=id_of(benchmark),
        generation_hash=generation_hash,
        generation=generation,
        decoding=decoding,
    )
    session.add(job)
    session.flush()
    size = shard_size or SHARD_SIZE
    index = 0
    # The public split first, then any private held-out split in server-only shards.
    for server_only in (False, True):
        item_ids = session.exec(
            select(col(Item.id))
            .where(Item.dataset_version_id == benchmark.dataset_version_id)
            .where(
                col(Item.split).not_in(PUBLIC_SPLITS)
                if server_only
                else Item.split == EVALUATION_SPLIT
            )
            .order_by(col(Item.key))
        ).all()
        for start in range(0, len(item_ids), size):
            session.add(
                Shard(
                    job_id=id_of(job),
                    index=index,
                    item_ids=[i for i in item_ids[start : start + size] if i is not None],
                    server_only=server_only,
                )
            )
            index += 1
    session.flush()
    return job


def finalize_job(db: Engine, job_id: int, policy: VerificationPolicy | None = None) -> bool:
    """Complete a job whose every shard has an accepted run, and score it.

    It is scored under the scoring identity of every current benchmark
    definition that shares its generation identity; each benchmark's
    leaderboard is rebuilt. Nothing is scored while any shard lacks an
    accepted run, so partial scores are never published, nor while a
    proven volunteer pool has no verified shard in the job
    (``verification.audit_job`` re-opens one for a replica). Safe to call
    twice and from several pools at once.

    Returns:
        Whether the job is complete.
    """
    from ..scoring import score_job_for_current_benchmarks

    with session_scope(db) as session:
        # FOR NO KEY UPDATE (PostgreSQL): one finalization of a job at a time, while rows
        # that merely point at the job (another job's board rebuild inserting its leaderboard
        # rows, KEY SHARE) do not wait for it; FOR UPDATE made such a pair deadlock.
        job = session.get(Job, job_id, with_for_update={"key_share": True})
        if job is None:
            raise NotFoundError(f"There is no job {job_id}.", "Check the job id.")
        if not job_complete(session, job_id):
            return False
        if audit_job(session, job_id, policy or VerificationPolicy.from_settings()):
            return False
        score_job_for_current_benchmarks(session, job)
        if job.status != JobStatus.COMPLETED:
            job.status = JobStatus.COMPLETED
            job.finished_at = utcnow()
            job.error = None
    return True


def finish_complete_jobs(db: Engine, policy: VerificationPolicy | None = None) -> list[int]:
    """Score every unfinished job whose shards all have accepted runs.

    Part of the periodic sweep: the pool that submits a job's last shard
    finalizes it, but a platform killed between storing that shard and
    scoring the job would leave it complete and unscored. A job whose
    scoring fails is logged and tried again at the next sweep.

    Returns:
        The jobs this call finished.
    """
    with session_scope(db) as session:
        open_shard = sa.exists().where(
            col(Shard.job_id) == Job.id, col(Shard.accepted_run_id).is_(None)
        )
        candidates = session.exec(
            select(Job.id).where(col(Job.status).in_(LEASABLE_JOBS), ~open_shard)
        ).all()
    finished = []
    for job_id in candidates:
        assert job_id is not None
        try:
            if finalize_job(db, job_id, policy):
                finished.append(job_id)
        except Exception:  # the sweep runs inside a pool's lease request
            _log.exception("Scoring job %s in the sweep failed; the next sweep tries again", job_id)
    return finished
