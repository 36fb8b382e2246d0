"""One pool as its owner sees it: machines, leases now, reputation and why, waiting results, credit.

The page of a volunteer's pool (``/pools/<id>``) reads this. Only the pool's
owner and admins may: anyone else is told the pool does not exist, exactly
as for an id never used, so pool ids cannot be enumerated. Reads only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from sabha.platform.domain import (
    Benchmark,
    Job,
    Model,
    Pool,
    PoolCredential,
    PoolStatus,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    as_utc,
    id_of,
)
from sabha.platform.errors import NotFoundError

from .pools import PoolActivityPublic, activity_of_pools
from .verification import VerificationPolicy, is_proven, is_trusted, waiting_results

__all__ = ["PoolRunPublic", "PoolStatusPublic", "PoolStage", "pool_status"]

PoolStage = Literal["trusted", "new", "proven", "quarantined"]
MAX_LISTED = 50
"""At most this many runs in each list of the page (the counts cover them all)."""


class PoolRunPublic(BaseModel):
    """One run of the pool: which shard of which job, and what became of it."""

    run_id: int
    job_id: int
    benchmark: str
    model: str
    shard_index: int
    items: int
    status: str
    verdict: str | None
    check_reason: str | None
    leased_at: datetime
    heartbeat_at: datetime | None
    expires_at: datetime
    finished_at: datetime | None
    error: str | None


class PoolStatusPublic(BaseModel):
    """A pool's page: what it registered, what it holds, how far it is trusted and why.

    ``stage``: ``trusted`` (the operator's own), ``new`` (every result waits
    for another owner's replica until ``verifications_needed`` more are
    verified), ``proven`` (results count at once, but a ``replicated_share``
    drawn after they arrive waits), ``quarantined`` (``activity.status_reason``
    says why). ``outcomes``: all its runs by what became of them (``agreed``:
    results another owner's pool verified); the reputation counts only
    verdicts since the pool was registered or reinstated
    (``activity.agreements``, ``activity.disagreements``). ``waiting_count``:
    its results waiting for a replica (``waiting`` lists the newest).
    """

    activity: PoolActivityPublic
    kind: str
    created_at: datetime
    last_seen_at: datetime | None
    machines: int
    gpus_per_node: int
    memory_bytes_per_gpu: int
    engines: int
    vllm: str
    driver: str
    dtype: str
    credential: str | None
    credential_revoked: bool
    stage: PoolStage
    verifications_needed: int
    replicated_share: float
    outcomes: dict[str, int]
    leases: list[PoolRunPublic]
    waiting: list[PoolRunPublic]
    waiting_count: int
    disputed: list[PoolRunPublic]


def _stage(pool: Pool, policy: VerificationPolicy) -> PoolStage:
    if is_trusted(pool):
        return "trusted"
    if pool.status == PoolStatus.QUARANTINED:
        return "quarantined"
    return "proven" if is_proven(pool, policy) else "new"


def _runs(session: Session, pool_id: int, *conditions: Any) -> list[PoolRunPublic]:
    """The pool's runs meeting ``conditions``, newest first (at most ``MAX_LISTED``)."""
    rows = session.exec(
        select(ShardRun, Shard, Benchmark.name, Model.name)
        .join(Shard, col(Shard.id) == ShardRun.shard_id)
        .join(Job, col(Job.id) == ShardRun.job_id)
        .join(Benchmark, col(Benchmark.id) == Job.benchmark_id)
        .join(Model, col(Model.id) == Job.model_id)
        .where(ShardRun.pool_id == pool_id, *conditions)
        .order_by(col(ShardRun.id).desc())
        .limit(MAX_LISTED)
    ).all()
    return [
        PoolRunPublic(
            run_id=id_of(run),
            job_id=run.job_id,
            benchmark=benchmark,
            model=model,
            shard_index=shard.index,
            items=len(shard.item_ids),
            status=run.status,
            verdict=run.verdict,
            check_reason=run.check_reason,
            leased_at=as_utc(run.leased_at),
            heartbeat_at=as_utc(run.heartbeat_at) if run.heartbeat_at else None,
            expires_at=as_utc(run.expires_at),
            finished_at=as_utc(run.finished_at) if run.finished_at else None,
            error=run.error,
        )
        for run, shard, benchmark, model in rows
    ]


def _outcomes(session: Session, pool_id: int, runs: dict[str, int]) -> dict[str, int]:
    """The pool's runs by outcome: counted, verified, disagreed, withdrawn, late, lapsed."""
    verdicts = {
        str(verdict): int(count)
        for verdict, count in session.exec(
            select(ShardRun.verdict, func.count())
            .where(ShardRun.pool_id == pool_id, col(ShardRun.verdict).is_not(None))
            .group_by(col(ShardRun.verdict))
        ).all()
    }
    return {
        "accepted": runs.get(RunStatus.ACCEPTED, 0),
        "agreed": verdicts.get(RunVerdict.AGREED, 0),
        "disagreed": verdicts.get(RunVerdict.DISAGREED, 0),
        "withdrawn": verdicts.get(RunVerdict.WITHDRAWN, 0),
        "late": runs.get(RunStatus.LATE, 0),
        "expired": runs.get(RunStatus.EXPIRED, 0),
        "released": runs.get(RunStatus.RELEASED, 0),
    }


def pool_status(
    db: Engine, pool_id: int, viewer_id: int, is_admin: bool, policy: VerificationPolicy
) -> PoolStatusPublic:
    """Pool ``pool_id`` as its owner sees it (any pool, for an admin).

    Raises:
        NotFoundError: no such pool of the viewer's (someone else's reads the same).
    """
    with Session(db) as session:
        pool = session.get(Pool, pool_id)
        if pool is None or (pool.owner_id != viewer_id and not is_admin):
            raise NotFoundError(
                f"There is no pool {pool_id} of yours.",
                "Pick one of your pools under 'Your pools' on /account.",
            )
        (activity,) = activity_of_pools(session, [pool])
        credential = session.get(PoolCredential, pool.credential_id) if pool.credential_id else None
        caps = pool.capabilities or {}
        stage = _stage(pool, policy)
        return PoolStatusPublic(
            activity=activity,
            kind=pool.kind,
            created_at=as_utc(pool.created_at),
            last_seen_at=as_utc(pool.last_seen_at) if pool.last_seen_at else None,
            machines=int(caps.get("ray_nodes", 1) or 1),
            gpus_per_node=int(caps.get("gpus_per_node", 0) or 0),
            memory_bytes_per_gpu=int(caps.get("memory_bytes_per_gpu", 0) or 0),
            engines=int(caps.get("engines", 1) or 1),
            vllm=str(caps.get("vllm", "")),
            driver=str(caps.get("driver", "")),
            dtype=str(caps.get("dtype", "")),
            credential=credential.name if credential else None,
            credential_revoked=bool(credential and credential.revoked_at),
            stage=stage,
            verifications_needed=(
                max(0, policy.new_pool_shards - pool.agreements) if stage == "new" else 0
            ),
            replicated_share=policy.fraction,
            outcomes=_outcomes(session, pool_id, activity.runs),
            leases=_runs(session, pool_id, ShardRun.status == RunStatus.LEASED),
            waiting=_runs(
                session,
                pool_id,
                ShardRun.status == RunStatus.SUBMITTED,
                col(ShardRun.verdict).is_(None),
                col(Shard.accepted_run_id).is_(None),
            ),
            waiting_count=waiting_results(session, pool_id),
            disputed=_runs(
                session,
                pool_id,
                col(ShardRun.verdict).in_([RunVerdict.DISAGREED, RunVerdict.WITHDRAWN]),
            ),
        )
