"""Leases: sweeping lapsed leases, leasing the next shard in one statement, heartbeats, release."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, func, update

from sabha.platform.benchmarks import render_prompt
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Item,
    Job,
    JobStatus,
    Model,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    Shard,
    ShardRun,
    ShardStatus,
    as_utc,
    utcnow,
)
from sabha.platform.errors import NotFoundError
from sabha.platform.wire import (
    CANNOT_RUN_HERE,
    DecodingParams,
    GenerationRequest,
    ShardLease,
)

from ..verification import VerificationPolicy, waiting_results
from .common import (
    DEFAULT_LEASE_SECONDS,
    LEASABLE_JOBS,
    LEASE_SWEEP_SECONDS,
    RESULT_STATUSES,
    SEEN_EVERY_SECONDS,
    LeaseLost,
    PoolNotActive,
    check_active,
    hash_token,
    run_for_token,
)
from .jobs import finish_complete_jobs
from .sweep import expire_leases, note_sweep

_log = logging.getLogger(__name__)

__all__ = [
    "heartbeat_lease",
    "lease_next_shard",
    "release_lease",
]


def _other_live_lease(run: ShardRun) -> sa.ColumnElement[bool]:
    other = sa.orm.aliased(ShardRun)
    return sa.exists().where(
        col(other.shard_id) == run.shard_id,
        col(other.id) != run.id,
        col(other.status) == RunStatus.LEASED,
    )


def lease_next_shard(
    db: Engine,
    pool_id: int,
    job_ids: Sequence[int] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    policy: VerificationPolicy | None = None,
    local_models_for_volunteers: bool = False,
) -> ShardLease | None:
    """Lease the next queued shard to a pool.

    Shards are leased in order (by job, then index). Lapsed leases are swept
    back into the queue at most every ``LEASE_SWEEP_SECONDS`` and whenever no
    queued shard is left, so a lapsed shard may wait behind queued ones for
    that long.

    Args:
        db: The database.
        pool_id: The leasing pool (``register_pool``).
        job_ids: Only lease shards of these jobs (None: any leasable job).
        lease_seconds: How long the lease holds without a heartbeat.
        policy: The verification policy (default: the settings'); a new
            volunteer pool with ``new_pool_shards`` results waiting for
            replicas gets nothing more until some are verified.
        local_models_for_volunteers: Whether volunteer pools may run jobs of
            models that are folders on the platform's disk (they share it).

    Returns:
        The lease with its plaintext token (shown once), or None when no shard
        is waiting.

    Raises:
        NotFoundError: the pool is unknown.
        PoolNotActive: the pool is quarantined.
    """
    if note_sweep(db, LEASE_SWEEP_SECONDS):
        expire_leases(db)
        finish_complete_jobs(db, policy)
    options = (lease_seconds, policy, local_models_for_volunteers)
    lease = _lease(db, pool_id, job_ids, *options)
    if lease is None and expire_leases(db):
        lease = _lease(db, pool_id, job_ids, *options)
    return lease


# The lease path runs against the tables with statements built once per shape
# (see ``_claim_statement``): building SQLAlchemy expressions and ORM objects
# cost several times more than the statements themselves.


_SHARD: sa.Table = Shard.__table__  # type: ignore[attr-defined]


_RUN: sa.Table = ShardRun.__table__  # type: ignore[attr-defined]


_JOB: sa.Table = Job.__table__  # type: ignore[attr-defined]


_MODEL: sa.Table = Model.__table__  # type: ignore[attr-defined]


_POOL: sa.Table = Pool.__table__  # type: ignore[attr-defined]


_ITEM: sa.Table = Item.__table__  # type: ignore[attr-defined]


_BENCHMARK: sa.Table = Benchmark.__table__  # type: ignore[attr-defined]


_RESULT_VALUES = [str(s) for s in RESULT_STATUSES]


def _lease(
    db: Engine,
    pool_id: int,
    job_ids: Sequence[int] | None,
    lease_seconds: int,
    policy: VerificationPolicy | None,
    local_models_for_volunteers: bool,
) -> ShardLease | None:
    """One lease transaction: the pool's check, the claim, the run and the prompts."""
    with session_scope(db) as session:
        connection = session.connection()
        pool = connection.execute(
            sa.select(
                _POOL.c.name,
                _POOL.c.status,
                _POOL.c.status_reason,
                _POOL.c.owner_id,
                _POOL.c.capabilities,
                _POOL.c.last_seen_at,
                _POOL.c.kind,
                _POOL.c.agreements,
            ).where(_POOL.c.id == sa.bindparam("pool_id")),
            {"pool_id": pool_id},
        ).first()
        if pool is None:
            raise NotFoundError(f"There is no pool {pool_id}.", "Register the pool first.")
        if pool.status != PoolStatus.ACTIVE:
            reason = f" ({pool.status_reason})" if pool.status_reason else ""
            raise PoolNotActive(
                f"Pool {pool.name!r} is {pool.status}{reason} and may not lease work.",
                "Ask a Sabha operator to review the pool's results and reinstate it; "
                "until then it gets no shards. Stop its agent meanwhile.",
            )
        local = pool.kind == PoolKind.LOCAL
        if not local:  # read the settings only for volunteers' pools: the local lease is hot
            policy = policy or VerificationPolicy.from_settings()
        if not local and policy is not None and pool.agreements < policy.new_pool_shards:
            # A new pool's results all wait for replicas: it may have only so many waiting.
            if waiting_results(session, pool_id) >= max(1, policy.new_pool_shards):
                return None
        memory = (pool.capabilities or {}).get("memory_bytes")
        if not isinstance(memory, int | float) or isinstance(memory, bool):
            memory = None
        claim = _claim_statement(
            connection.dialect.name == "postgresql",
            pool.owner_id is not None,
            memory is not None,
            job_ids is not None,
            local,
            local or local_models_for_volunteers,
        )
        claimed = connection.execute(
            claim,
            {
                "pool_id": pool_id,
                "owner_id": pool.owner_id,
                "memory": int(memory) if memory is not None else None,
                "job_ids": list(job_ids or []),
            },
        ).first()
        if claimed is None:
            return None
        now = utcnow()
        if pool.last_seen_at is None or now - as_utc(pool.last_seen_at) > timedelta(
            seconds=SEEN_EVERY_SECONDS
        ):
            connection.execute(update(_POOL).where(_POOL.c.id == pool_id).values(last_seen_at=now))
        return _open_run(connection, pool_id, claimed, now, lease_seconds)


@functools.cache
def _claim_statement(
    postgresql: bool, owned: bool, memory: bool, jobs: bool, local: bool, local_models: bool
) -> sa.Update:
    """Pick and claim the first queued shard a pool may run, in one statement.

    Never one the pool or its owner already returned results for (replicas
    come from other owners), nor one whose model needs more memory than the
    pool's engines have, nor one the pool handed back because its hardware
    cannot run the model (a reason beginning ``CANNOT_RUN_HERE``). A
    server-only shard (a private held-out split) goes to the operator's local
    pools only (``local``): a volunteer's pool never sees its items. A job
    whose model is a folder on the platform's disk goes to pools that can
    read that disk only (``local_models``).
    ``UPDATE shard ... WHERE id = (SELECT ... LIMIT 1) RETURNING``: on
    PostgreSQL the pick skips rows other transactions have locked, so
    concurrent pools claim different shards without waiting. Parameters:
    ``pool_id``, ``owner_id``, ``memory``, ``job_ids``.
    """
    candidate = _SHARD.alias("candidate")
    ran = _RUN.alias("ran")
    same_owner: sa.ColumnElement[bool]
    if owned:
        same_owner = ran.c.pool_id.in_(
            sa.select(_POOL.c.id).where(_POOL.c.owner_id == sa.bindparam("owner_id"))
        )
    else:
        same_owner = ran.c.pool_id == sa.bindparam("pool_id")
    already_ran = sa.exists().where(
        ran.c.shard_id == candidate.c.id, same_owner, ran.c.status.in_(_RESULT_VALUES)
    )
    refused = _RUN.alias("refused")
    cannot_run = sa.exists().where(
        refused.c.shard_id == candidate.c.id,
        refused.c.pool_id == sa.bindparam("pool_id"),
        refused.c.status == str(RunStatus.RELEASED),
        refused.c.error.startswith(CANNOT_RUN_HERE, autoescape=True),
    )
    pick = (
        sa.select(candidate.c.id)
        .join(_JOB, _JOB.c.id == candidate.c.job_id)
        .where(
            candidate.c.status == str(ShardStatus.QUEUED),
            _JOB.c.status.in_([str(s) for s in LEASABLE_JOBS]),
            _JOB.c.superseded_by_id.is_(None),
            ~already_ran,
            ~cannot_run,
        )
        .order_by(candidate.c.job_id, candidate.c.index)
        .limit(1)
    )
    if memory:
        pick = pick.where(
            sa.or_(_JOB.c.memory_bytes.is_(None), _JOB.c.memory_bytes <= sa.bindparam("memory"))
        )
    if jobs:
        pick = pick.where(candidate.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))
    if not local:
        pick = pick.where(candidate.c.server_only.is_(False))
    if not local_models:
        on_disk = sa.select(_MODEL.c.id).where(_MODEL.c.source == "local")
        pick = pick.where(_JOB.c.model_id.not_in(on_disk))
    if postgresql:
        pick = pick.with_for_update(skip_locked=True, of=candidate)
    return (
        update(_SHARD)
        .where(_SHARD.c.id == pick.scalar_subquery(), _SHARD.c.status == str(ShardStatus.QUEUED))
        .values(status=str(ShardStatus.LEASED))
        .returning(_SHARD.c.id, _SHARD.c.job_id, _SHARD.c.index, _SHARD.c.item_ids)
    )


@functools.cache
def _open_run_statement() -> sa.Insert:
    """``INSERT INTO shard_run ... SELECT``: the run, numbered from the shard's earlier runs."""
    prior = _RUN.alias("prior")
    when = _RUN.c.leased_at.type
    numbered = (
        sa.select(
            sa.bindparam("shard_id", type_=sa.Integer),
            sa.bindparam("job_id", type_=sa.Integer),
            sa.bindparam("pool_id", type_=sa.Integer),
            # replica: how many runs had results; attempt: how many leases came before
            func.count().filter(prior.c.status.in_(_RESULT_VALUES)),
            func.count() + 1,
            sa.bindparam("token_hash", type_=sa.String),
            sa.literal(str(RunStatus.LEASED)),
            sa.bindparam("now", type_=when),
            sa.bindparam("heartbeat_at", type_=when),
            sa.bindparam("expires_at", type_=when),
        )
        .select_from(prior)
        .where(prior.c.shard_id == sa.bindparam("shard_id"))
    )
    columns = [
        "shard_id", "job_id", "pool_id", "replica", "attempt",
        "token_hash", "status", "leased_at", "heartbeat_at", "expires_at",
    ]  # fmt: skip
    return (
        sa.insert(_RUN)
        .from_select(columns, numbered)
        .returning(_RUN.c.id, _RUN.c.replica, _RUN.c.attempt)
    )


def _open_run(
    connection: sa.Connection,
    pool_id: int,
    claimed: sa.Row[int, int, int, list[int]],
    now: datetime,
    lease_seconds: int,
) -> ShardLease:
    """Insert the claimed shard's run and build its lease."""
    shard_id, job_id, index, item_ids = claimed
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=lease_seconds)
    run_id, replica, attempt = connection.execute(
        _open_run_statement(),
        {
            "shard_id": shard_id,
            "job_id": job_id,
            "pool_id": pool_id,
            "token_hash": hash_token(token),
            "now": now,
            "heartbeat_at": now,
            "expires_at": expires_at,
        },
    ).one()
    job = connection.execute(
        sa.select(
            _JOB.c.status,
            _JOB.c.generation,
            _JOB.c.decoding,
            _JOB.c.memory_bytes,
            _MODEL.c.name,
            _MODEL.c.source,
            _MODEL.c.path,
            _MODEL.c.repo_id,
            _MODEL.c.revision,
            _BENCHMARK.c.name.label("benchmark"),
        )
        .join(_MODEL, _MODEL.c.id == _JOB.c.model_id)
        .join(_BENCHMARK, _BENCHMARK.c.id == _JOB.c.benchmark_id)
        .where(_JOB.c.id == sa.bindparam("job_id")),
        {"job_id": job_id},
    ).one()
    if job.status == JobStatus.QUEUED:
        connection.execute(
            update(_JOB)
            .where(_JOB.c.id == job_id, _JOB.c.status == str(JobStatus.QUEUED))
            .values(
                status=str(JobStatus.RUNNING),
                started_at=sa.func.coalesce(
                    _JOB.c.started_at, sa.literal(now, _JOB.c.started_at.type)
                ),
            )
        )
    inputs: dict[int, tuple[dict[str, str], str]] = {
        item_id: (fields, language)
        for item_id, fields, language in connection.execute(
            sa.select(_ITEM.c.id, _ITEM.c.input, _ITEM.c.language).where(
                _ITEM.c.id.in_(sa.bindparam("item_ids", expanding=True))
            ),
            {"item_ids": list(item_ids)},
        )
    }
    generation = job.generation
    template = str(generation["prompt_template"])
    system = generation.get("system_prompt")
    requests = [
        GenerationRequest(
            item_id=item_id,
            text=render_prompt(template, inputs[item_id][0]),
            system=system,
            language=inputs[item_id][1],
        )
        for item_id in item_ids
    ]
    return ShardLease(
        run_id=run_id,
        token=token,
        job_id=job_id,
        shard_id=shard_id,
        shard_index=index,
        attempt=attempt,
        replica=replica,
        expires_at=expires_at,
        model=Model(
            name=job.name,
            source=job.source,
            path=job.path,
            repo_id=job.repo_id,
            revision=job.revision,
        ).as_source(),
        max_model_len=int(generation.get("max_model_len", 2048)),
        chat_template=generation.get("chat_template", "auto"),
        decoding=DecodingParams.model_validate(job.decoding),
        requests=requests,
        memory_bytes=job.memory_bytes,
        benchmark=job.benchmark,
    )


def heartbeat_lease(
    db: Engine, run_id: int, token: str, lease_seconds: int = DEFAULT_LEASE_SECONDS
) -> datetime:
    """Extend a held lease.

    Returns:
        The new deadline.

    Raises:
        LeaseLost: the lease expired, was released or is not this token's.
    """
    with session_scope(db) as session:
        run = run_for_token(session, run_id, token)
        check_active(session, run.pool_id)
        now = utcnow()
        if run.status != RunStatus.LEASED or as_utc(run.expires_at) < now:
            raise LeaseLost(
                f"The lease of shard run {run_id} is no longer held ({run.status}).",
                "Finish and submit the shard anyway (late results are kept), or lease another.",
            )
        run.heartbeat_at = now
        run.expires_at = now + timedelta(seconds=lease_seconds)
        return run.expires_at


def release_lease(db: Engine, run_id: int, token: str, reason: str | None = None) -> None:
    """Hand a lease back: the shard returns to the queue at once.

    Releasing a run that is no longer leased changes nothing.
    """
    with session_scope(db) as session:
        run = run_for_token(session, run_id, token)
        if run.status != RunStatus.LEASED:
            return
        run.status = RunStatus.RELEASED
        run.finished_at = utcnow()
        run.error = reason
        session.exec(
            update(Shard)
            .where(col(Shard.id) == run.shard_id, col(Shard.status) == ShardStatus.LEASED)
            .where(col(Shard.accepted_run_id).is_(None))
            .where(~_other_live_lease(run))
            .values(status=ShardStatus.QUEUED)
        )
