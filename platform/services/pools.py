"""Volunteer pools behind the lease protocol: one pool per pool credential.

The HTTP layer (``platform/api/_pools.py``) authenticates a worker token to
its pool credential; these functions find that credential's pool and check
that every lease it touches is its own before calling the queue, so a pool
can never heartbeat, submit or release another pool's lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Output,
    Pool,
    PoolCredential,
    PoolKind,
    RunStatus,
    RunVerdict,
    ShardRun,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError, PermissionDenied, SabhaError
from sabha.platform.wire import PoolInfo, PoolRegistration, ShardLease, ShardResult

from .queue import (
    DEFAULT_LEASE_SECONDS,
    LeaseWaiters,
    SubmitOutcome,
    finalize_job,
    heartbeat_lease,
    lease_shards,
    release_lease,
    submit_shard_results,
    submit_shard_results_batch,
)
from .verification import VerificationPolicy

__all__ = [
    "register_pool",
    "PoolActivityPublic",
    "activity_of_pools",
    "PoolNameTaken",
    "heartbeat_own_lease",
    "lease_for_credential",
    "leases_for_credential",
    "pool_activity",
    "pool_info",
    "register_credential_pool",
    "release_own_lease",
    "submit_own_result",
    "submit_own_results",
]


class PoolNameTaken(SabhaError):
    """Another pool already has the name a registration asks for."""

    http_status = 409
    problem_type = "pool-name-taken"

    @property
    def field_problems(self) -> list[tuple[str, str, str]]:
        """The refused field, for problem documents."""
        return [("body.name", self.message, self.hint or "")]


def register_pool(
    db: Engine,
    name: str,
    kind: PoolKind = PoolKind.LOCAL,
    capabilities: dict[str, object] | None = None,
    owner_id: int | None = None,
    credential_id: int | None = None,
) -> int:
    """Find or create the pool ``name``; record its capabilities and when it was seen.

    Args:
        db: The database.
        name: The pool's unique name.
        kind: ``local`` (the operator's own, trusted) or ``remote`` (a volunteer's).
        capabilities: What the pool reported (``PoolCapabilities`` fields);
            ``memory_bytes`` is the most one of its engines can hold.
        owner_id: The user behind a remote pool; replicas of a shard always
            come from pools of different owners.
        credential_id: The pool credential the pool registered with.

    Returns:
        The pool's id.
    """
    with session_scope(db) as session:
        pool = session.exec(select(Pool).where(Pool.name == name)).first()
        if pool is None:
            pool = Pool(
                name=name,
                kind=kind,
                capabilities=dict(capabilities or {}),
                owner_id=owner_id,
                credential_id=credential_id,
            )
            session.add(pool)
        elif capabilities is not None:
            pool.capabilities = dict(capabilities)
        pool.last_seen_at = utcnow()
        session.flush()
        return id_of(pool)


def pool_info(pool: Pool, proven_after: int = 0) -> PoolInfo:
    """The wire view of a pool; ``proven_after``: verified agreements that prove a pool."""
    return PoolInfo(
        id=id_of(pool),
        name=pool.name,
        status=pool.status,
        reputation=pool.reputation,
        agreements=pool.agreements,
        disagreements=pool.disagreements,
        verifications_needed=max(0, proven_after - pool.agreements),
    )


def register_credential_pool(
    db: Engine, credential_id: int, registration: PoolRegistration, proven_after: int = 0
) -> PoolInfo:
    """Create or update the pool of a pool credential (name and capabilities).

    ``proven_after`` (``SABHA_REPLICATION_NEW_POOL_SHARDS``) lets the answer say
    how many verified results the pool still needs before its results count
    without waiting for replicas.

    Raises:
        PoolNameTaken: another pool has the name; nothing changed.
    """
    with session_scope(db) as session:
        credential = session.get(PoolCredential, credential_id)
        if credential is None:
            raise NotFoundError("The pool credential is gone.", "Create a new one.")
        pool = session.exec(select(Pool).where(Pool.credential_id == credential_id)).first()
        named = session.exec(select(Pool).where(Pool.name == registration.name)).first()
        if named is not None and named is not pool:
            raise PoolNameTaken(
                f"Another pool is already called {registration.name!r}.",
                "Choose another pool name (--name).",
            )
        capabilities = registration.capabilities.model_dump(mode="json")
        if pool is None:
            pool = Pool(
                name=registration.name,
                kind=PoolKind.REMOTE,
                capabilities=capabilities,
                owner_id=credential.owner_id,
                credential_id=credential_id,
            )
            session.add(pool)
        else:
            pool.name = registration.name
            pool.capabilities = capabilities
        pool.last_seen_at = utcnow()
        session.flush()
        return pool_info(pool, proven_after)


def _pool_of(session: Session, credential_id: int) -> Pool:
    pool = session.exec(select(Pool).where(Pool.credential_id == credential_id)).first()
    if pool is None:
        raise NotFoundError(
            "This pool credential has not registered a pool yet.",
            "Register first: POST /api/v1/pools (the agent does it when it starts).",
        )
    return pool


def lease_for_credential(
    db: Engine,
    credential_id: int,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    policy: VerificationPolicy | None = None,
    local_models_for_volunteers: bool = False,
) -> ShardLease | None:
    """Lease the next shard for the credential's pool (None: no work it may run)."""
    leases = leases_for_credential(
        db, credential_id, 1, None, lease_seconds, policy, local_models_for_volunteers
    )
    return leases[0] if leases else None


def leases_for_credential(
    db: Engine,
    credential_id: int,
    max_shards: int,
    job_ids: Sequence[int] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    policy: VerificationPolicy | None = None,
    local_models_for_volunteers: bool = False,
    waiters: LeaseWaiters | None = None,
    wait_seconds: float = 0.0,
) -> list[ShardLease] | None:
    """Lease up to ``max_shards`` shards for the credential's pool (``queue.lease_shards``).

    With ``waiters`` and ``wait_seconds``, a request that finds no work waits
    for some (``LeaseWaiters.lease``); an unknown pool (404) or a quarantined
    one (403) is refused before any waiting.

    Returns:
        The leases (empty: no work it may run), or None when it found none and
        this process has no room for another waiting request (or the pool
        already has one waiting here).
    """
    with Session(db) as session:
        pool_id = id_of(_pool_of(session, credential_id))

    def take() -> list[ShardLease]:
        return lease_shards(
            db, pool_id, max_shards, job_ids, lease_seconds, policy, local_models_for_volunteers
        )

    if waiters is None:
        return take()
    return waiters.lease(take, wait_seconds, pool_id)


def _check_own(db: Engine, credential_id: int, run_id: int) -> int:
    """Refuse a lease of another pool (403) or an unknown one (404); changes nothing.

    Returns:
        The run's job id.
    """
    with Session(db) as session:
        pool = _pool_of(session, credential_id)
        run = session.get(ShardRun, run_id)
        refusal = _not_own(run_id, run, pool)
        if refusal is not None:
            raise refusal
        assert run is not None
        return run.job_id


def _not_own(run_id: int, run: ShardRun | None, pool: Pool) -> SabhaError | None:
    """Why ``pool`` may not touch the run ``run_id`` (``run``: None when unknown), or None."""
    if run is None:
        return NotFoundError(f"There is no shard run {run_id}.", "Lease a new shard.")
    if run.pool_id != pool.id:
        return PermissionDenied(
            f"Shard run {run_id} is another pool's lease.",
            "Use only the leases your own pool was given.",
        )
    return None


def heartbeat_own_lease(
    db: Engine,
    credential_id: int,
    run_id: int,
    token: str,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> object:
    """Extend the pool's own lease; returns the new deadline."""
    _check_own(db, credential_id, run_id)
    return heartbeat_lease(db, run_id, token, lease_seconds)


def submit_own_result(
    db: Engine,
    credential_id: int,
    result: ShardResult,
    policy: VerificationPolicy | None = None,
) -> SubmitOutcome:
    """Submit the results of the pool's own lease; a job it completes is scored.

    ``policy`` is the app's replication policy (default: from the environment).
    """
    job_id = _check_own(db, credential_id, result.run_id)
    outcome = submit_shard_results(db, result, policy)
    if outcome.job_complete:  # safe to repeat: scored once; an audit may re-open a shard
        outcome = replace(outcome, job_complete=finalize_job(db, job_id, policy))
    return outcome


def submit_own_results(
    db: Engine,
    credential_id: int,
    results: Sequence[ShardResult],
    policy: VerificationPolicy | None = None,
) -> list[SubmitOutcome | SabhaError]:
    """Submit several results of the pool's own leases at once; jobs they complete are scored.

    Each result is refused or stored exactly as :func:`submit_own_result`
    would: a run of another pool (403) or an unknown one (404) is refused
    before its token is looked at, and the rest go to
    ``queue.submit_shard_results_batch`` (one transaction). A refused result
    changes nothing; the others are stored all the same.

    Returns:
        One outcome per result, in the order given: the ``SubmitOutcome``, or
        the error a single post of it would have been refused with.

    Raises:
        NotFoundError: the credential has no pool (nothing is looked at).
    """
    run_ids = [r.run_id for r in results]
    with Session(db) as session:
        pool = _pool_of(session, credential_id)
        runs = {
            id_of(run): run
            for run in session.exec(select(ShardRun).where(col(ShardRun.id).in_(run_ids)))
        }
        refusals = {i: _not_own(i, runs.get(i), pool) for i in run_ids}
    own = [r for r in results if refusals[r.run_id] is None]
    batch = submit_shard_results_batch(db, own, policy)
    stored = dict(zip([r.run_id for r in own], batch, strict=True))
    finished: dict[int, bool] = {}  # safe to repeat, as in submit_own_result; once per job
    outcomes: list[SubmitOutcome | SabhaError] = []
    for run_id in run_ids:
        outcome = refusals[run_id] or stored[run_id]
        if isinstance(outcome, SubmitOutcome) and outcome.job_complete:
            job_id = runs[run_id].job_id
            if job_id not in finished:
                finished[job_id] = finalize_job(db, job_id, policy)
            outcome = replace(outcome, job_complete=finished[job_id])
        outcomes.append(outcome)
    return outcomes


def release_own_lease(
    db: Engine, credential_id: int, run_id: int, token: str, reason: str | None
) -> None:
    """Hand the pool's own lease back."""
    _check_own(db, credential_id, run_id)
    release_lease(db, run_id, token, reason)


def _credited() -> sa.ColumnElement[bool]:
    """Runs that earn credit: results that count (accepted) or that verified another's.

    Never results that wait, disagreed or were withdrawn: credit follows
    verification, not volume.
    """
    return sa.or_(
        col(ShardRun.status) == RunStatus.ACCEPTED, col(ShardRun.verdict) == RunVerdict.AGREED
    )


class PoolActivityPublic(BaseModel):
    """What one of a volunteer's pools did, for their account page.

    ``runs`` counts the pool's shard runs by status (``accepted`` ones count
    on leaderboards). The credit figures cover **credited** runs only: runs
    whose results count (accepted) or agreed with another owner's, never
    runs still waiting, outvoted or withdrawn. ``items`` and
    ``output_tokens`` cover their outputs without an error (tokens as the
    pool reported them, at most the job's ``max_tokens`` each).
    ``engine_seconds`` sums what the pool reported its engines worked on
    them (each run's share of its engine's busy time: GPU-seconds on one-GPU
    engines; never more than the lease lasted) over the ``measured_runs``
    that reported it. ``lease_seconds`` is the wall time from lease to
    results (``finished_at - leased_at``), as the platform saw it; it
    includes waiting in the engine behind other shards.
    """

    id: int
    name: str
    status: str
    status_reason: str | None
    device: str
    gpus: int
    gpu_name: str
    memory_bytes: int
    runs: dict[str, int]
    accepted_shards: int
    total_runs: int
    items: int
    output_tokens: int
    lease_seconds: float
    engine_seconds: float
    measured_runs: int
    agreements: int
    disagreements: int
    reputation: float


def _seconds_between(start: Any, end: Any, dialect: str) -> Any:
    """SQL for ``end - start`` in seconds, on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def pool_activity(session: Session, owner_id: int) -> list[PoolActivityPublic]:
    """What each pool of ``owner_id`` did: runs, items, tokens, engine and lease time, agreement.

    Three grouped queries over all the owner's pools, whatever their number
    of runs and outputs. Pools are listed by name.
    """
    pools = session.exec(
        select(Pool).where(Pool.owner_id == owner_id).order_by(col(Pool.name))
    ).all()
    return activity_of_pools(session, list(pools))


def activity_of_pools(session: Session, pools: list[Pool]) -> list[PoolActivityPublic]:
    """:func:`pool_activity` of these pools (any owner's), in their order."""
    if not pools:
        return []
    pool_ids = [id_of(p) for p in pools]
    runs: dict[int, dict[str, int]] = {i: {} for i in pool_ids}
    for pool_id, status, count in session.exec(
        select(ShardRun.pool_id, ShardRun.status, func.count())
        .where(col(ShardRun.pool_id).in_(pool_ids))
        .group_by(col(ShardRun.pool_id), col(ShardRun.status))
    ).all():
        runs[pool_id][status] = int(count)
    produced = {
        pool_id: (int(items), int(tokens or 0))
        for pool_id, items, tokens in session.exec(
            select(ShardRun.pool_id, func.count(col(Output.id)), func.sum(Output.num_tokens))
            .join(ShardRun, col(ShardRun.id) == Output.shard_run_id)
            .where(
                col(ShardRun.pool_id).in_(pool_ids),
                _credited(),
                col(Output.error).is_(None),
            )
            .group_by(col(ShardRun.pool_id))
        ).all()
    }
    dialect = session.get_bind().dialect.name
    seconds = _seconds_between(col(ShardRun.leased_at), col(ShardRun.finished_at), dialect)
    lease = {
        pool_id: (float(total or 0.0), float(engine or 0.0), int(measured))
        for pool_id, total, engine, measured in session.exec(
            select(
                ShardRun.pool_id,
                func.sum(sa.cast(seconds, sa.Float)),
                func.sum(ShardRun.engine_seconds),
                func.count(col(ShardRun.engine_seconds)),
            )
            .where(
                col(ShardRun.pool_id).in_(pool_ids),
                _credited(),
                col(ShardRun.finished_at).is_not(None),
            )
            .group_by(col(ShardRun.pool_id))
        ).all()
    }
    activity = []
    for pool in pools:
        pool_id = id_of(pool)
        capabilities = pool.capabilities or {}
        items, tokens = produced.get(pool_id, (0, 0))
        lease_seconds, engine_seconds, measured = lease.get(pool_id, (0.0, 0.0, 0))
        activity.append(
            PoolActivityPublic(
                id=pool_id,
                name=pool.name,
                status=pool.status,
                status_reason=pool.status_reason,
                device=str(capabilities.get("device", "")),
                gpus=int(capabilities.get("gpus", 0) or 0),
                gpu_name=str(capabilities.get("gpu_name", "")),
                memory_bytes=int(capabilities.get("memory_bytes", 0) or 0),
                runs=runs[pool_id],
                accepted_shards=runs[pool_id].get(RunStatus.ACCEPTED, 0),
                total_runs=sum(runs[pool_id].values()),
                items=items,
                output_tokens=tokens,
                lease_seconds=max(0.0, lease_seconds),
                engine_seconds=engine_seconds,
                measured_runs=measured,
                agreements=pool.agreements,
                disagreements=pool.disagreements,
                reputation=pool.reputation,
            )
        )
    return activity
