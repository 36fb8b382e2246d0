"""A new result's verdict: accepted at once, accepted by agreeing owners, or replicated."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from sabha.platform.domain import (
    Item,
    Output,
    Pool,
    PoolStatus,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    ShardStatus,
    id_of,
    utcnow,
)

from .audit import quarantine_pool, requeue_shard
from .compare import RunOutputs, compare_runs
from .policy import VerificationPolicy, is_trusted, needs_replica, owner_key, reputation_of

__all__ = ["settle_shard"]


def _outputs_of(session: Session, run_ids: Iterable[int]) -> dict[int, dict[int, Any]]:
    answers: dict[int, dict[int, Any]] = {}
    for run_id, item_id, text, error in session.exec(
        select(Output.shard_run_id, Output.item_id, Output.text, Output.error).where(
            col(Output.shard_run_id).in_(list(run_ids))
        )
    ):
        answers.setdefault(run_id, {})[item_id] = (text, error)
    return answers


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
        requeue_shard(session, shard)
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
    owners = len({r.pool_id for r in agreeing})
    # Pools' rows are updated in the order of their ids, so two shards settled at once
    # never wait on each other's pools in a cycle (PostgreSQL row locks).
    for run in sorted(agreeing + disagreeing, key=lambda r: (r.pool_id, id_of(r))):
        agreed = run in agreeing
        pool = _count(session, run.pool_id, agreed=agreed)
        if not agreed and pool.status == PoolStatus.ACTIVE and not is_trusted(pool):
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
