"""Results: storing a pool's answers to its lease and settling the shard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Item,
    Job,
    Output,
    Pool,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    as_utc,
    id_of,
    utcnow,
)
from sabha.platform.errors import SabhaError
from sabha.platform.wire import (
    DecodingParams,
    ShardResult,
)

from ..verification import VerificationPolicy, settle_shard
from .common import (
    LeaseLost,
    PoolNotActive,
    ResultRejected,
    SubmitOutcome,
    check_active,
    job_complete,
    run_for_token,
)

_log = logging.getLogger(__name__)

__all__ = [
    "submit_shard_results",
    "submit_shard_results_batch",
]


def submit_shard_results(
    db: Engine, result: ShardResult, policy: VerificationPolicy | None = None
) -> SubmitOutcome:
    """Store a pool's results for its leased shard.

    Idempotent: submitting the same run again changes nothing. The results
    must answer exactly the shard's items, each once. Whether they are
    accepted at once or wait for replicas from other owners' pools is decided
    by ``verification.settle_shard`` under ``policy`` (default: the settings).

    Raises:
        LeaseLost: unknown run or wrong token.
        PoolNotActive: the pool is quarantined; nothing is stored.
        ResultRejected: the item set differs from the shard's, or an answer
            claims more tokens than the job allows; nothing is stored.
    """
    with session_scope(db) as session:
        stored = _submit(session, result, policy)
    # Read after the commit: two pools submitting a job's last two shards at once
    # each see the other's shard open inside their own transactions, so neither
    # would call the job complete (PostgreSQL, READ COMMITTED).
    with session_scope(db) as session:
        return stored.outcome(job_complete(session, stored.job_id))


def submit_shard_results_batch(
    db: Engine, results: Sequence[ShardResult], policy: VerificationPolicy | None = None
) -> list[SubmitOutcome | SabhaError]:
    """Store several results in one transaction, each as :func:`submit_shard_results` would.

    Each result is checked on its own (its run, its token, its pool, its item
    set); one that is refused (``LeaseLost``, ``PoolNotActive``,
    ``ResultRejected``) has that error as its outcome and nothing of it is
    stored (a savepoint), while the others are. Results are stored in the
    order of their shards' ids, so two batches settling replicas of the same
    shards (PostgreSQL row locks) never wait on each other in a cycle. Any
    other error (the database failing) rolls the whole batch back.

    Returns:
        One outcome per result, in the order given.
    """
    stored: dict[int, _Stored | SabhaError] = {}
    with session_scope(db) as session:
        run_ids = [r.run_id for r in results]
        shard_of = dict(
            session.exec(
                select(ShardRun.id, ShardRun.shard_id).where(col(ShardRun.id).in_(run_ids))
            ).all()
        )
        order = sorted(range(len(results)), key=lambda i: (shard_of.get(run_ids[i], 0), run_ids[i]))
        for i in order:
            try:
                with session.begin_nested():
                    stored[i] = _submit(session, results[i], policy)
            except (LeaseLost, PoolNotActive, ResultRejected) as refused:
                stored[i] = refused
    jobs = {s.job_id for s in stored.values() if isinstance(s, _Stored)}
    with session_scope(db) as session:  # after the commit, as submit_shard_results reads it
        complete = {job_id: job_complete(session, job_id) for job_id in sorted(jobs)}
    return [
        s.outcome(complete[s.job_id]) if isinstance(s, _Stored) else s
        for s in (stored[i] for i in range(len(results)))
    ]


@dataclass(frozen=True)
class _Stored:
    """A result stored (or found stored before) in a transaction not yet committed."""

    status: RunStatus
    duplicate: bool
    verdict: RunVerdict | None
    job_id: int

    def outcome(self, complete: bool) -> SubmitOutcome:
        return SubmitOutcome(self.status, self.duplicate, complete, self.verdict)


def _submit(session: Session, result: ShardResult, policy: VerificationPolicy | None) -> _Stored:
    """Check a result against its lease and store it (unless it was stored before)."""
    run = run_for_token(session, result.run_id, result.token)
    check_active(session, run.pool_id)
    # The shard is locked (PostgreSQL) so two replicas of it posted at once settle one
    # after the other: each sees the other's run, and they are compared.
    shard = session.get(Shard, run.shard_id, with_for_update=True)
    assert shard is not None
    if run.status in (RunStatus.ACCEPTED, RunStatus.SUBMITTED, RunStatus.LATE):
        status, duplicate = RunStatus(run.status), True
    else:
        status, duplicate = _store_results(session, run, shard, result, policy), False
    return _Stored(status, duplicate, run.verdict, run.job_id)


def _store_results(
    session: Session,
    run: ShardRun,
    shard: Shard,
    result: ShardResult,
    policy: VerificationPolicy | None,
) -> RunStatus:
    """Store a leased run's results and settle its shard; returns the run's new status."""
    answered = [r.item_id for r in result.results]
    if sorted(answered) != sorted(shard.item_ids):
        missing = sorted(set(shard.item_ids) - set(answered))
        extra = sorted(set(answered) - set(shard.item_ids))
        repeated = sorted({i for i in answered if answered.count(i) > 1})
        raise ResultRejected(
            f"The results for shard run {run.id} do not answer exactly its "
            f"{len(shard.item_ids)} items (missing {missing[:5]}, unknown {extra[:5]}, "
            f"repeated {repeated[:5]}).",
            "Send one result per leased item, no more and no fewer.",
        )
    job = session.get(Job, run.job_id)
    assert job is not None
    decoding = DecodingParams.model_validate(job.decoding)
    languages = dict(
        session.exec(select(Item.id, Item.language).where(col(Item.id).in_(shard.item_ids))).all()
    )
    inflated = [
        r.item_id
        for r in result.results
        if r.num_tokens > decoding.max_tokens_for(languages.get(r.item_id))
    ]
    if inflated:
        raise ResultRejected(
            f"The results for shard run {run.id} claim more new tokens than the job allows "
            f"their language (at most {decoding.max_tokens}) for items {inflated[:5]}.",
            "Report num_tokens as the engine counted them (at most the item's budget).",
        )
    now = utcnow()
    on_time = run.status == RunStatus.LEASED and as_utc(run.expires_at) >= now
    open_shard = shard.accepted_run_id is None
    if open_shard:
        # A late result counts like any other while the shard is open: after an
        # outage the shard may be leased to another owner's pool meanwhile, and
        # the two runs then verify each other.
        run.status = RunStatus.SUBMITTED  # settled below
    else:
        run.status = RunStatus.SUBMITTED if on_time else RunStatus.LATE
    run.finished_at = now
    run.executed_on = result.executed_on.model_dump(mode="json")
    if result.engine_seconds is not None:  # never more than the lease lasted
        wall = max(0.0, (now - as_utc(run.leased_at)).total_seconds())
        run.engine_seconds = min(result.engine_seconds, wall)
    session.add_all(
        Output(
            shard_run_id=id_of(run),
            job_id=run.job_id,
            item_id=r.item_id,
            prompt=r.prompt,
            text=r.text,
            finish_reason=r.finish_reason,
            num_tokens=r.num_tokens,
            error=r.error,
        )
        for r in result.results
    )
    session.flush()
    if open_shard and run.status == RunStatus.SUBMITTED:
        pool = session.get(Pool, run.pool_id)
        assert pool is not None
        accepted = settle_shard(
            session, shard, run, pool, policy or VerificationPolicy.from_settings()
        )
        if accepted is not None:
            from ..scoring import stats_for_new_outputs

            outputs = session.exec(select(Output).where(Output.shard_run_id == accepted.id)).all()
            stats_for_new_outputs(session, job, list(outputs))
    return run.status
