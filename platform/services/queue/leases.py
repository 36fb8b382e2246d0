"""Leases: sweeping lapsed leases, leasing shards (one or a batch at once), heartbeats, release."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    ModelSource,
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
    "lease_shards",
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
    """Lease the next queued shard to a pool: ``lease_shards`` for one shard.

    Returns:
        The lease with its plaintext token (shown once), or None when no shard
        is waiting.

    Raises:
        NotFoundError: the pool is unknown.
        PoolNotActive: the pool is quarantined.
    """
    leases = lease_shards(
        db, pool_id, 1, job_ids, lease_seconds, policy, local_models_for_volunteers
    )
    return leases[0] if leases else None


def lease_shards(
    db: Engine,
    pool_id: int,
    max_shards: int,
    job_ids: Sequence[int] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    policy: VerificationPolicy | None = None,
    local_models_for_volunteers: bool = False,
) -> list[ShardLease]:
    """Lease up to ``max_shards`` queued shards to a pool, in one transaction.

    Shards are leased in order (by job, then index), picked and claimed by one
    statement (``_claim_statement``), so a batch costs about as many round
    trips as one lease. Lapsed leases are swept back into the queue at most
    every ``LEASE_SWEEP_SECONDS`` and whenever no queued shard is left, so a
    lapsed shard may wait behind queued ones for that long.

    Args:
        db: The database.
        pool_id: The leasing pool (``register_pool``).
        max_shards: The most shards to lease (at least 1).
        job_ids: Only lease shards of these jobs (None: any leasable job).
        lease_seconds: How long each lease holds without a heartbeat.
        policy: The verification policy (default: the settings'); a new
            volunteer pool with ``new_pool_shards`` results waiting for
            replicas gets no new shard until some are verified (only a shard
            waiting for a replica of another owner's result, one a call),
            and a batch never takes it past that many.
        local_models_for_volunteers: Whether volunteer pools may run jobs of
            models that are folders on the platform's disk (they share it).

    Returns:
        The leases, each with its plaintext token (shown once), in lease
        order; empty when no shard is waiting.

    Raises:
        ValueError: ``max_shards`` is below 1.
        NotFoundError: the pool is unknown.
        PoolNotActive: the pool is quarantined.
    """
    if max_shards < 1:
        raise ValueError(f"max_shards must be at least 1, not {max_shards}")
    if note_sweep(db, LEASE_SWEEP_SECONDS):
        expire_leases(db)
        finish_complete_jobs(db, policy)
    options = (lease_seconds, policy, local_models_for_volunteers)
    leases = _lease(db, pool_id, max_shards, job_ids, *options)
    if not leases and expire_leases(db):
        leases = _lease(db, pool_id, max_shards, job_ids, *options)
    return leases


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
    max_shards: int,
    job_ids: Sequence[int] | None,
    lease_seconds: int,
    policy: VerificationPolicy | None,
    local_models_for_volunteers: bool,
) -> list[ShardLease]:
    """One lease transaction: the pool's check, the claim, the runs and the prompts."""
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
        replicas_only = False
        if not local and policy is not None and pool.agreements < policy.new_pool_shards:
            # A new pool's results all wait for replicas: it may have only so many waiting.
            room = max(1, policy.new_pool_shards) - waiting_results(session, pool_id)
            if room > 0:
                max_shards = min(max_shards, room)
            else:
                # It may still verify others, a shard a call: a shard waiting for a replica
                # (its result is compared with another owner's, so it counts only if they
                # agree). Else two new pools, each at its limit and each waiting for the
                # other's replica, would wait for ever.
                replicas_only, max_shards = True, 1
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
            replicas_only,
        )
        claimed = connection.execute(
            claim,
            {
                "pool_id": pool_id,
                "owner_id": pool.owner_id,
                "memory": int(memory) if memory is not None else None,
                "job_ids": list(job_ids or []),
                "max_shards": max_shards,
            },
        ).all()
        if not claimed:
            return []
        now = utcnow()
        if pool.last_seen_at is None or now - as_utc(pool.last_seen_at) > timedelta(
            seconds=SEEN_EVERY_SECONDS
        ):
            connection.execute(update(_POOL).where(_POOL.c.id == pool_id).values(last_seen_at=now))
        # RETURNING names the claimed rows in no particular order: lease them in queue order.
        shards = sorted((_Claimed(*row) for row in claimed), key=lambda c: (c.job_id, c.index))
        return _open_runs(connection, pool_id, shards, now, lease_seconds)


@functools.cache
def _claim_statement(
    postgresql: bool,
    owned: bool,
    memory: bool,
    jobs: bool,
    local: bool,
    local_models: bool,
    replicas_only: bool = False,
) -> sa.Update:
    """Pick and claim the first queued shards a pool may run, in one statement.

    Never one the pool or its owner already returned results for (replicas
    come from other owners), nor one whose model needs more memory than the
    pool's engines have, nor one the pool handed back because its hardware
    cannot run the model (a reason beginning ``CANNOT_RUN_HERE``). A
    server-only shard (a private held-out split) goes to the operator's local
    pools only (``local``): a volunteer's pool never sees its items. A job
    whose model is a folder on the platform's disk goes to pools that can
    read that disk only (``local_models``). With ``replicas_only``, only shards
    that wait for a replica of another owner's result (``replicas`` above 1).
    ``WITH picked AS MATERIALIZED (SELECT ... LIMIT :max_shards) UPDATE shard
    ... WHERE id IN picked RETURNING``: the pick runs once (materialized), and
    on PostgreSQL it skips rows other transactions have locked (``FOR UPDATE
    SKIP LOCKED``), so concurrent pools claim different shards without
    waiting; SQLite has no row locks and serialises writers (``BEGIN
    IMMEDIATE``). Parameters: ``pool_id``, ``owner_id``, ``memory``,
    ``job_ids``, ``max_shards``.
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
        .limit(sa.bindparam("max_shards", type_=sa.Integer))
    )
    if memory:
        pick = pick.where(
            sa.or_(_JOB.c.memory_bytes.is_(None), _JOB.c.memory_bytes <= sa.bindparam("memory"))
        )
    if jobs:
        pick = pick.where(candidate.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))
    if replicas_only:
        pick = pick.where(candidate.c.replicas > 1)
    if not local:
        pick = pick.where(candidate.c.server_only.is_(False))
    if not local_models:
        on_disk = sa.select(_MODEL.c.id).where(_MODEL.c.source == "local")
        pick = pick.where(_JOB.c.model_id.not_in(on_disk))
    if postgresql:
        pick = pick.with_for_update(skip_locked=True, of=candidate)
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    return (
        update(_SHARD)
        .where(_SHARD.c.id.in_(sa.select(picked.c.id)))
        .where(_SHARD.c.status == str(ShardStatus.QUEUED))
        .values(status=str(ShardStatus.LEASED))
        .returning(_SHARD.c.id, _SHARD.c.job_id, _SHARD.c.index, _SHARD.c.item_ids)
    )


@dataclass(frozen=True)
class _Claimed:
    """A shard the claim statement leased (its ``RETURNING`` row)."""

    shard_id: int
    job_id: int
    index: int
    item_ids: list[int]


@functools.cache
def _earlier_runs_statement() -> sa.Select[Any]:
    """Per claimed shard: its runs with results (the new run's replica) and all its runs."""
    return (
        sa.select(
            _RUN.c.shard_id,
            func.count().filter(_RUN.c.status.in_(_RESULT_VALUES)),
            func.count(),
        )
        .where(_RUN.c.shard_id.in_(sa.bindparam("shard_ids", expanding=True)))
        .group_by(_RUN.c.shard_id)
    )


@functools.cache
def _insert_runs_statement() -> sa.Insert:
    """``INSERT INTO shard_run ... RETURNING shard_id, id``, for the claimed shards' runs."""
    return sa.insert(_RUN).returning(_RUN.c.shard_id, _RUN.c.id)


@functools.cache
def _job_statement() -> sa.Select[Any]:
    """What a lease says about its job: generation, decoding, model, benchmark."""
    return (
        sa.select(
            _JOB.c.id,
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
        .where(_JOB.c.id.in_(sa.bindparam("job_ids", expanding=True)))
    )


def _open_runs(
    connection: sa.Connection,
    pool_id: int,
    shards: list[_Claimed],
    now: datetime,
    lease_seconds: int,
) -> list[ShardLease]:
    """Insert the claimed shards' runs (one multi-row ``INSERT``) and build their leases.

    Each run is numbered from its shard's earlier runs: ``replica`` counts the
    runs with results, ``attempt`` the leases before it (plus one). The claim
    holds the shards (``leased``, and on PostgreSQL locked), so no other lease
    of them can be numbered meanwhile.
    """
    shard_ids = [shard.shard_id for shard in shards]
    numbers = {shard_id: (0, 1) for shard_id in shard_ids}  # (replica, attempt)
    for shard_id, replica, runs in connection.execute(
        _earlier_runs_statement(), {"shard_ids": shard_ids}
    ):
        numbers[shard_id] = (int(replica), int(runs) + 1)
    expires_at = now + timedelta(seconds=lease_seconds)
    tokens = {shard_id: secrets.token_urlsafe(32) for shard_id in shard_ids}
    rows = [
        {
            "shard_id": shard.shard_id,
            "job_id": shard.job_id,
            "pool_id": pool_id,
            "replica": numbers[shard.shard_id][0],
            "attempt": numbers[shard.shard_id][1],
            "token_hash": hash_token(tokens[shard.shard_id]),
            "status": str(RunStatus.LEASED),
            "leased_at": now,
            "heartbeat_at": now,
            "expires_at": expires_at,
        }
        for shard in shards
    ]
    # executemany with RETURNING: SQLAlchemy sends one multi-row INSERT (insertmanyvalues)
    # from a statement compiled once, where .values(rows) would compile one per batch.
    inserted = connection.execute(_insert_runs_statement(), rows)
    run_ids = {shard_id: run_id for shard_id, run_id in inserted}
    job_ids = sorted({shard.job_id for shard in shards})
    jobs = {job.id: job for job in connection.execute(_job_statement(), {"job_ids": job_ids})}
    started = [job_id for job_id in job_ids if jobs[job_id].status == JobStatus.QUEUED]
    if started:
        connection.execute(
            update(_JOB)
            .where(_JOB.c.id.in_(started), _JOB.c.status == str(JobStatus.QUEUED))
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
            {"item_ids": [item_id for shard in shards for item_id in shard.item_ids]},
        )
    }
    models = {  # built once per job: an ORM object costs more than a statement here
        job.id: Model(
            name=job.name,
            source=job.source,
            path=job.path,
            repo_id=job.repo_id,
            revision=job.revision,
        ).as_source()
        for job in jobs.values()
    }
    return [
        _lease_of(
            shard,
            jobs[shard.job_id],
            models[shard.job_id],
            inputs,
            run_id=run_ids[shard.shard_id],
            token=tokens[shard.shard_id],
            replica=numbers[shard.shard_id][0],
            attempt=numbers[shard.shard_id][1],
            expires_at=expires_at,
        )
        for shard in shards
    ]


def _lease_of(
    shard: _Claimed,
    job: sa.Row[Any],
    model: ModelSource,
    inputs: dict[int, tuple[dict[str, str], str]],
    *,
    run_id: int,
    token: str,
    replica: int,
    attempt: int,
    expires_at: datetime,
) -> ShardLease:
    """The lease of one claimed shard: its run, and its items rendered as prompts."""
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
        for item_id in shard.item_ids
    ]
    return ShardLease(
        run_id=run_id,
        token=token,
        job_id=shard.job_id,
        shard_id=shard.shard_id,
        shard_index=shard.index,
        attempt=attempt,
        replica=replica,
        expires_at=expires_at,
        model=model,
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
