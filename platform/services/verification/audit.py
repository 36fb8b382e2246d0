"""Re-opening accepted results: the audit before a job is scored, quarantine, reinstatement."""

from __future__ import annotations

from sqlmodel import Session, col, delete, func, select

from sabha.platform.domain import (
    Benchmark,
    CheckReason,
    Job,
    JobStatus,
    LeaderboardEntry,
    Pool,
    PoolStatus,
    RunStatus,
    RunVerdict,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
    id_of,
    utcnow,
)

from .policy import VerificationPolicy, is_trusted, keyed_draw

__all__ = ["audit_job", "quarantine_pool", "reinstate_pool", "requeue_shard"]


def requeue_shard(session: Session, shard: Shard) -> None:
    """Put a shard back in the queue unless a live lease holds it."""
    live = session.exec(
        select(func.count())
        .select_from(ShardRun)
        .where(ShardRun.shard_id == shard.id, ShardRun.status == RunStatus.LEASED)
    ).one()
    if not live:
        shard.status = ShardStatus.QUEUED


def audit_job(session: Session, job_id: int, policy: VerificationPolicy) -> list[int]:
    """Before a complete job is scored, make sure no pool's word alone stands in it.

    For every volunteer pool with results in the job that were accepted on
    its word (a proven pool's, never compared with another run), one of
    those results is picked by a keyed hash, after they are all in, and its
    shard re-opened for a replica; its run stays and is judged when the
    replica arrives. Once a pool has had such an audit in the job, it passes.
    Results checked for other reasons do not count: checks made while the
    pool was new say nothing of what it did once trusted, and a drawn sample
    is announced to the pool (its result waits), so a cheater could be honest
    until one is drawn and forge the rest. A job is scored only when this
    re-opens nothing.

    Returns:
        The ids of the shards re-opened (empty: the job may be scored).
    """
    if not policy.audit_jobs:
        return []
    checked = set(
        session.exec(
            select(ShardRun.pool_id).where(
                ShardRun.job_id == job_id,
                ShardRun.check_reason == CheckReason.AUDIT,
            )
        ).all()
    )
    unchecked: dict[int, list[tuple[Shard, ShardRun]]] = {}
    for shard, run, pool in session.exec(
        select(Shard, ShardRun, Pool)
        .join(ShardRun, col(ShardRun.id) == Shard.accepted_run_id)
        .join(Pool, col(Pool.id) == ShardRun.pool_id)
        .where(Shard.job_id == job_id, col(ShardRun.verdict).is_(None))
    ).all():
        if not is_trusted(pool) and pool.id not in checked:
            unchecked.setdefault(id_of(pool), []).append((shard, run))
    reopened = []
    for pool_id in sorted(unchecked):
        shard, run = max(
            unchecked[pool_id], key=lambda pair: keyed_draw(policy, f"audit:{pair[1].id}")
        )
        run.status = RunStatus.SUBMITTED
        run.check_reason = CheckReason.AUDIT
        shard.accepted_run_id = None
        shard.finished_at = None
        shard.replicas = max(shard.replicas, 2)
        session.flush()
        requeue_shard(session, shard)
        reopened.append(id_of(shard))
    session.flush()
    return reopened


def quarantine_pool(session: Session, pool: Pool, reason: str) -> list[int]:
    """Stop a pool and withdraw every result of it that no other owner verified.

    Its live leases are released, its results waiting for replicas are
    withdrawn, its accepted but unverified runs are un-accepted and their
    shards re-queued, and the scores of jobs that counted them are withdrawn
    (leaderboards rebuilt) until those shards are recomputed elsewhere.

    Returns:
        The ids of the jobs whose shards went back to the queue.
    """
    pool.status = PoolStatus.QUARANTINED
    pool.status_reason = reason
    now = utcnow()
    runs = session.exec(
        select(ShardRun).where(
            ShardRun.pool_id == pool.id,
            col(ShardRun.status).in_([RunStatus.LEASED, RunStatus.SUBMITTED, RunStatus.ACCEPTED]),
            col(ShardRun.verdict).is_(None),
        )
    ).all()
    jobs: set[int] = set()
    for run in runs:
        shard = session.get(Shard, run.shard_id)
        assert shard is not None
        if run.status == RunStatus.LEASED:
            run.status = RunStatus.RELEASED
            run.finished_at = now
            run.error = "the pool was quarantined"
            session.flush()
            if shard.accepted_run_id is None:
                requeue_shard(session, shard)
            continue
        if run.status == RunStatus.ACCEPTED:
            run.status = RunStatus.SUBMITTED
            shard.accepted_run_id = None
            shard.finished_at = None
            session.flush()
            requeue_shard(session, shard)
            jobs.add(run.job_id)
        run.verdict = RunVerdict.WITHDRAWN
    session.flush()
    for job_id in sorted(jobs):
        _withdraw_scores(session, job_id)
    return sorted(jobs)


def _withdraw_scores(session: Session, job_id: int) -> None:
    """Delete a job's scoring runs and leaderboard rows; it is scored again when complete."""
    from sabha.leaderboards.board import rebuild_leaderboard

    job = session.get(Job, job_id)
    assert job is not None
    run_ids = session.exec(select(ScoringRun.id).where(ScoringRun.job_id == job_id)).all()
    if job.status == JobStatus.COMPLETED:
        job.status = JobStatus.RUNNING
        job.finished_at = None
    if not run_ids:
        return
    session.exec(delete(LeaderboardEntry).where(col(LeaderboardEntry.job_id) == job_id))
    session.exec(delete(Score).where(col(Score.scoring_run_id).in_(run_ids)))
    session.exec(delete(ScoringRun).where(col(ScoringRun.job_id) == job_id))
    session.flush()
    for benchmark in session.exec(
        select(Benchmark).where(
            Benchmark.generation_hash == job.generation_hash, col(Benchmark.is_current).is_(True)
        )
    ):
        rebuild_leaderboard(session, benchmark)


def reinstate_pool(session: Session, pool: Pool) -> None:
    """Let a quarantined pool lease again (an operator's decision); its counts start afresh."""
    pool.status = PoolStatus.ACTIVE
    pool.status_reason = None
    pool.agreements = pool.disagreements = 0
    pool.reputation = 1.0
