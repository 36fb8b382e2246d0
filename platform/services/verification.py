"""Verified results: replicas on pools of different owners, earned trust, quarantine.

Volunteer pools are not trusted; what they post counts only when it is
verified, and trust is earned only by verification (docs/verification.md):

- The operator's own pools (``local``: ``sabha eval``) are trusted: their
  results are accepted at once and settle any replicas waiting.
- A volunteer pool is **new** until ``new_pool_shards`` of its results were
  verified by agreeing runs of other owners' pools (agreements, never the
  number of results it posted). Every result of a new pool waits for such a
  replica before it counts, and a new pool holds at most ``new_pool_shards``
  results waiting at once (more leases wait), so rushing buys nothing.
- A **proven** pool's results count at once, except a ``fraction`` of them,
  picked after each result arrives by a keyed hash of its run (the pool
  cannot tell which), which wait for a replica; and before a job is scored,
  every proven pool whose results it uses must have at least one of its
  shards in that job verified (``audit_job``), so a pool that turns to
  forging cannot get a job published on its word alone.
- Two runs **agree** when their outputs are identical, or within the
  measured tolerance for honest setups that differ: at least ``item_share``
  of the items have a chrF similarity of at least ``item_chrf``, and the two
  runs' shard chrF against the references differ by at most ``score_delta``.
- When runs disagree, no verdict is given: the shard goes back to the queue
  for another replica (never to a pool or owner that already ran it). The
  oldest run that two owners' runs agree with is accepted. A pool whose run
  is outvoted that way (or disagrees with a trusted pool's) is **quarantined
  at once**: it leases nothing and its results are refused, its waiting
  results are withdrawn, and its accepted results that no other owner
  verified are un-accepted, their shards re-queued and the scores built on
  them withdrawn until they are recomputed elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, delete, func, select

from sabha.platform.domain import (
    Benchmark,
    CheckReason,
    Item,
    Job,
    JobStatus,
    LeaderboardEntry,
    Output,
    Pool,
    PoolKind,
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
from sabha.platform.settings import Settings

__all__ = [
    "Comparison",
    "RunOutputs",
    "VerificationPolicy",
    "audit_job",
    "compare_runs",
    "is_proven",
    "is_trusted",
    "needs_replica",
    "owner_key",
    "quarantine_pool",
    "reinstate_pool",
    "reputation_of",
    "settle_shard",
    "waiting_results",
]


@dataclass(frozen=True)
class VerificationPolicy:
    """How much replication is asked for and how replicas are compared (see the module).

    Attributes:
        new_pool_shards: Verified agreements a volunteer pool needs before its
            results count without a replica; also the most results a new pool
            may have waiting for replicas at once.
        fraction: Share of a proven pool's results replicated all the same.
        item_chrf: chrF similarity at which two answers to an item agree.
        item_share: Share of a shard's items whose answers must agree.
        score_delta: Largest difference of the two runs' shard chrF against the
            references.
        audit_jobs: Before a job is scored, verify at least one shard of every
            proven pool whose results it uses (off only where every pool is the
            operator's own).
        key: Keys the hash that picks replicated results (the secret key).
    """

    new_pool_shards: int = 20
    fraction: float = 0.1
    item_chrf: float = 50.0
    item_share: float = 0.6
    score_delta: float = 5.0
    audit_jobs: bool = True
    key: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> VerificationPolicy:
        """The policy the ``SABHA_REPLICA*``/``SABHA_REPLICATION_*`` settings describe."""
        s = settings or Settings()
        return cls(
            new_pool_shards=s.replication_new_pool_shards,
            fraction=s.replication_fraction,
            item_chrf=s.replica_item_chrf,
            item_share=s.replica_item_share,
            score_delta=s.replica_score_delta,
            audit_jobs=s.replication_audit_jobs,
            key=s.resolved_secret_key,
        )


@dataclass(frozen=True)
class RunOutputs:
    """One run's answers by item id, ``(text, error)``, and the setup it ran on."""

    answers: Mapping[int, tuple[str, str | None]]
    setup: Mapping[str, Any]


@dataclass(frozen=True)
class Comparison:
    """Whether two runs agree, and the figures that decided it."""

    agree: bool
    exact: bool
    item_share: float
    score_delta: float


def _error_kind(error: str) -> str:
    return error.split(":", 1)[0].strip()


def _item_similarity(a: tuple[str, str | None], b: tuple[str, str | None]) -> float:
    from sacrebleu.metrics import CHRF

    (text_a, error_a), (text_b, error_b) = a, b
    if error_a or error_b:
        same = bool(error_a and error_b and _error_kind(error_a) == _error_kind(error_b))
        return 100.0 if same else 0.0
    if text_a.strip() == text_b.strip():
        return 100.0
    chrf = CHRF()  # symmetric: the mean of both directions
    return (
        chrf.sentence_score(text_a, [text_b]).score + chrf.sentence_score(text_b, [text_a]).score
    ) / 2


def _shard_chrf(run: RunOutputs, references: Mapping[int, str]) -> float:
    from sacrebleu.metrics import CHRF

    ids = sorted(references)
    hypotheses = [
        "" if run.answers[i][1] else run.answers[i][0].strip() for i in ids if i in run.answers
    ]
    return float(CHRF().corpus_score(hypotheses, [[references[i] for i in ids]]).score)


def compare_runs(
    a: RunOutputs, b: RunOutputs, references: Mapping[int, str], policy: VerificationPolicy
) -> Comparison:
    """Compare two runs of one shard with the documented tolerance.

    Identical outputs agree. Otherwise the tolerance decides, whatever the two
    setups: greedy outputs of one model already differ between two machines
    of the same kind (docs/verification.md has the measurements).

    Args:
        a: One run's answers and setup.
        b: The other's (the same items).
        references: Reference answers by item id (items without one are left out
            of the shard score).
        policy: The thresholds.
    """
    items = sorted(set(a.answers) | set(b.answers))
    if all(a.answers.get(i) == b.answers.get(i) for i in items):
        return Comparison(True, True, 1.0, 0.0)
    missing = ("", "missing")
    similar = [
        _item_similarity(a.answers.get(i, missing), b.answers.get(i, missing)) >= policy.item_chrf
        for i in items
    ]
    share = sum(similar) / len(similar) if similar else 1.0
    refs = {i: r for i, r in references.items() if i in a.answers and i in b.answers}
    delta = abs(_shard_chrf(a, refs) - _shard_chrf(b, refs)) if refs else 0.0
    agree = share >= policy.item_share and delta <= policy.score_delta
    return Comparison(agree, False, share, delta)


def reputation_of(agreements: int, disagreements: int) -> float:
    """``(agreements + 1) / (agreements + disagreements + 1)``: 1.0 for a new pool."""
    return (agreements + 1) / (agreements + disagreements + 1)


def is_trusted(pool: Pool) -> bool:
    """The operator's own pools (``sabha eval``) are trusted; volunteer pools are not."""
    return pool.kind == PoolKind.LOCAL


def is_proven(pool: Pool, policy: VerificationPolicy) -> bool:
    """A volunteer pool with ``new_pool_shards`` verified agreements, still active."""
    return (
        not is_trusted(pool)
        and pool.status == PoolStatus.ACTIVE
        and pool.agreements >= policy.new_pool_shards
    )


def owner_key(pool: Pool) -> str:
    """Who stands behind a pool: its owner, or the pool itself when it has none."""
    return f"user:{pool.owner_id}" if pool.owner_id is not None else f"pool:{pool.id}"


def waiting_results(session: Session, pool_id: int) -> int:
    """The pool's results waiting for a replica: runs with results, no verdict, shard open."""
    return int(
        session.exec(
            select(func.count())
            .select_from(ShardRun)
            .join(Shard, col(Shard.id) == ShardRun.shard_id)
            .where(
                ShardRun.pool_id == pool_id,
                ShardRun.status == RunStatus.SUBMITTED,
                col(ShardRun.verdict).is_(None),
                col(Shard.accepted_run_id).is_(None),
            )
        ).one()
    )


def _draw(policy: VerificationPolicy, what: str) -> float:
    """A keyed draw in [0, 1): the same for the same ``what``, unpredictable without the key."""
    digest = hmac.new(policy.key.encode(), what.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _picked(policy: VerificationPolicy, what: str, share: float) -> bool:
    """True for about ``share`` of the values of ``what``."""
    return _draw(policy, what) < share


def needs_replica(pool: Pool, run: ShardRun, policy: VerificationPolicy) -> CheckReason | None:
    """Why ``run``'s result, from ``pool``, must be verified by another owner first, if it must.

    Every result of a new volunteer pool (``new_pool``); a ``fraction`` of a
    proven pool's, drawn per run after the result arrived (``sample``); never
    a trusted pool's (None).
    """
    if is_trusted(pool):
        return None
    if not is_proven(pool, policy):
        return CheckReason.NEW_POOL
    return CheckReason.SAMPLE if _picked(policy, f"run:{run.id}", policy.fraction) else None


def _outputs_of(session: Session, run_ids: Iterable[int]) -> dict[int, dict[int, Any]]:
    answers: dict[int, dict[int, Any]] = {}
    for run_id, item_id, text, error in session.exec(
        select(Output.shard_run_id, Output.item_id, Output.text, Output.error).where(
            col(Output.shard_run_id).in_(list(run_ids))
        )
    ):
        answers.setdefault(run_id, {})[item_id] = (text, error)
    return answers


def _requeue(session: Session, shard: Shard) -> None:
    """Put a shard back in the queue unless a live lease holds it."""
    live = session.exec(
        select(func.count())
        .select_from(ShardRun)
        .where(ShardRun.shard_id == shard.id, ShardRun.status == RunStatus.LEASED)
    ).one()
    if not live:
        shard.status = ShardStatus.QUEUED


def _accept(session: Session, shard: Shard, run: ShardRun) -> None:
    run.status = RunStatus.ACCEPTED
    shard.accepted_run_id = id_of(run)
    shard.status = ShardStatus.COMPLETED
    shard.finished_at = utcnow()


def settle_shard(
    session: Session, shard: Shard, run: ShardRun, pool: Pool, policy: VerificationPolicy
) -> ShardRun | None:
    """Decide what a new result (``run``, status ``submitted``) means for its open shard.

    Either a run is accepted (this one, or an earlier one it agrees with) and
    verdicts and reputations are recorded, or the shard goes back to the
    queue for another replica.

    Returns:
        The run accepted now, or None while the shard waits for replicas.
    """
    pending = _pending_runs(session, shard)
    if is_trusted(pool):  # the waiting replicas are judged against the trusted result
        others = [r for r in pending if r.id != run.id]
        outputs = _run_outputs(session, pending)
        references = _references(session, shard)
        agreeing = [
            r
            for r in others
            if compare_runs(outputs[id_of(run)], outputs[id_of(r)], references, policy).agree
        ]
        _accept(session, shard, run)
        _judge(session, shard, agreeing, [r for r in others if r not in agreeing])
        return run
    if shard.replicas <= 1 and len(pending) == 1:
        reason = needs_replica(pool, run, policy)
        if reason is None:
            _accept(session, shard, run)
            return run
        run.check_reason = reason
        shard.replicas = 2
    winner, agreeing = _majority(session, shard, pending, policy)
    if winner is None:
        _requeue(session, shard)
        return None
    _accept(session, shard, winner)
    _judge(session, shard, agreeing, [r for r in pending if r not in agreeing])
    return winner


def _pending_runs(session: Session, shard: Shard) -> list[ShardRun]:
    """Runs of the shard with results that no verdict has settled, oldest first."""
    return list(
        session.exec(
            select(ShardRun)
            .where(
                ShardRun.shard_id == shard.id,
                ShardRun.status == RunStatus.SUBMITTED,
                col(ShardRun.verdict).is_(None),
            )
            .order_by(col(ShardRun.id))
        ).all()
    )


def _run_outputs(session: Session, runs: list[ShardRun]) -> dict[int, RunOutputs]:
    answers = _outputs_of(session, [id_of(r) for r in runs])
    return {id_of(r): RunOutputs(answers.get(id_of(r), {}), r.executed_on or {}) for r in runs}


def _references(session: Session, shard: Shard) -> dict[int, str]:
    rows = session.exec(select(Item.id, Item.reference).where(col(Item.id).in_(shard.item_ids)))
    return {item_id: ref for item_id, ref in rows if item_id is not None and ref}


def _majority(
    session: Session, shard: Shard, pending: list[ShardRun], policy: VerificationPolicy
) -> tuple[ShardRun | None, list[ShardRun]]:
    """The oldest run that ``shard.replicas`` owners' runs (its own included) agree with."""
    if len(pending) < shard.replicas:
        return None, []
    outputs = _run_outputs(session, pending)
    references = _references(session, shard)
    pool_ids = [r.pool_id for r in pending]
    pools = {p.id: p for p in session.exec(select(Pool).where(col(Pool.id).in_(pool_ids)))}
    for candidate in pending:
        agreeing = [candidate] + [
            other
            for other in pending
            if other is not candidate
            and compare_runs(
                outputs[id_of(candidate)], outputs[id_of(other)], references, policy
            ).agree
        ]
        if len({owner_key(pools[r.pool_id]) for r in agreeing}) >= shard.replicas:
            return candidate, agreeing
    return None, []


def _judge(
    session: Session,
    shard: Shard,
    agreeing: list[ShardRun],
    disagreeing: list[ShardRun],
) -> None:
    """Record the verdicts of a settled shard's runs; quarantine the pools outvoted."""
    for run in agreeing:
        run.verdict = RunVerdict.AGREED
    for run in disagreeing:
        run.verdict = RunVerdict.DISAGREED
    session.flush()
    for run in agreeing:
        _count(session, run.pool_id, agreed=True)
    owners = len({r.pool_id for r in agreeing})
    for run in disagreeing:
        pool = _count(session, run.pool_id, agreed=False)
        if pool.status == PoolStatus.ACTIVE and not is_trusted(pool):
            quarantine_pool(
                session,
                pool,
                f"its results for shard {shard.index} of job {shard.job_id} disagreed with "
                f"the accepted results ({owners} agreeing run(s) of other owners' pools, "
                "or the operator's own)",
            )


def _count(session: Session, pool_id: int, agreed: bool) -> Pool:
    pool = session.get(Pool, pool_id)
    assert pool is not None
    if agreed:
        pool.agreements += 1
    else:
        pool.disagreements += 1
    pool.reputation = reputation_of(pool.agreements, pool.disagreements)
    return pool


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
        shard, run = max(unchecked[pool_id], key=lambda pair: _draw(policy, f"audit:{pair[1].id}"))
        run.status = RunStatus.SUBMITTED
        run.check_reason = CheckReason.AUDIT
        shard.accepted_run_id = None
        shard.finished_at = None
        shard.replicas = max(shard.replicas, 2)
        session.flush()
        _requeue(session, shard)
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
                _requeue(session, shard)
            continue
        if run.status == RunStatus.ACCEPTED:
            run.status = RunStatus.SUBMITTED
            shard.accepted_run_id = None
            shard.finished_at = None
            session.flush()
            _requeue(session, shard)
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
