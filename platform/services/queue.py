"""The work queue: the one module that leases shards and takes their results.

Every pool goes through these functions: the local ``sabha eval`` calls them
in-process, volunteer pools will call them over HTTPS. The database is the
source of truth: a lease is a ``shard_run`` row with a deadline and a hashed
token; a shard counts the outputs of exactly one run (``accepted_run_id``).

- ``lease_next_shard``: one ``UPDATE shard ... WHERE id = (SELECT ... LIMIT
  1) RETURNING`` picks and claims a shard (on PostgreSQL the pick is ``FOR
  UPDATE SKIP LOCKED``, on SQLite writers are serialised by ``BEGIN
  IMMEDIATE``), and one ``INSERT ... SELECT`` opens its run, so two pools
  never hold a shard at once.
- ``expire_leases`` is a sweep, not part of every lease: ``lease_next_shard``
  runs it at most every ``LEASE_SWEEP_SECONDS`` per process, and whenever it
  finds no queued shard, so a lapsed lease's shard is leased again at the
  latest then. A lease past its deadline is dead even before the sweep sees
  it: heartbeats are refused and its results count as late.
- ``submit_shard_results`` is idempotent and checks the pool, the token and
  the exact item set. A result that arrives after its lease expired counts
  like any other while its shard is still open (it may meet the replica of
  the pool that leased the shard since); once the shard has an accepted run,
  it is kept as an extra (``late``) attempt, so nothing is counted twice.
- Whether a result is accepted at once or waits for replicas from other
  owners' pools is ``verification.settle_shard``'s decision; a pool is never
  leased a shard it or its owner already returned results for, nor a job
  whose memory estimate exceeds what its engines hold, nor (a volunteer's
  pool) a job whose model is a folder on the platform's disk, unless
  ``SABHA_LOCAL_MODELS_FOR_VOLUNTEERS`` says the pools share that disk.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select, update

from sabha.platform.benchmarks import generation_identity
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Benchmark,
    DatasetVersion,
    Item,
    Job,
    JobStatus,
    Model,
    Output,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    Shard,
    ShardRun,
    ShardStatus,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError, PermissionDenied, SabhaError
from sabha.platform.wire import (
    CANNOT_RUN_HERE,
    DecodingParams,
    GenerationRequest,
    ModelSource,
    ShardLease,
    ShardResult,
)

from .budgets import TokenCounter, bytes_counter, resolve_answer_budgets
from .verification import VerificationPolicy, audit_job, settle_shard, waiting_results

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LEASE_SWEEP_SECONDS",
    "LeaseLost",
    "PoolNotActive",
    "ResultRejected",
    "SubmitOutcome",
    "create_job",
    "expire_leases",
    "finalize_job",
    "finish_complete_jobs",
    "heartbeat_lease",
    "job_progress",
    "lease_next_shard",
    "register_pool",
    "release_lease",
    "render_prompt",
    "shard_states",
    "submit_shard_results",
]

DEFAULT_LEASE_SECONDS = 300
# The longest a lapsed lease's shard waits for the sweep while other shards are queued.
LEASE_SWEEP_SECONDS = 5.0
# Leasing records when a pool was last seen only when the record is older than this.
SEEN_EVERY_SECONDS = 30
SHARD_SIZE = 64
EVALUATION_SPLIT = "test"
"""The public split a job evaluates; items of private held-out splits (any split
outside ``PUBLIC_SPLITS``) are evaluated too, in server-only shards."""
LEASABLE_JOBS = (JobStatus.QUEUED, JobStatus.RUNNING)
RESULT_STATUSES = (RunStatus.ACCEPTED, RunStatus.SUBMITTED, RunStatus.LATE)


class LeaseLost(SabhaError):
    """The lease is unknown, has another token, or is no longer held."""

    http_status = 409
    problem_type = "lease-lost"


class PoolNotActive(PermissionDenied):
    """A quarantined pool asked for work: it gets none until it is reinstated."""

    http_status = 403
    problem_type = "pool-quarantined"


class ResultRejected(SabhaError):
    """A shard result does not fit its lease (items, sizes); nothing was stored."""

    http_status = 422
    problem_type = "result-rejected"

    @property
    def field_problems(self) -> list[tuple[str, str, str]]:
        """The refused field, for problem documents."""
        return [("body.results", self.message, self.hint or "")]


@dataclass(frozen=True)
class SubmitOutcome:
    """What became of a submitted shard result.

    Attributes:
        status: The run's status afterwards (``accepted``, ``late``, or
            ``submitted``: waiting for replicas, or another run was accepted).
        duplicate: The same result had been submitted before; nothing changed.
        job_complete: Every shard of the job now has an accepted run.
        verdict: What replication made of it so far (``agreed``: it verified
            or was verified by another owner's run; ``disagreed``,
            ``withdrawn``), None while it is not compared.
    """

    status: str
    duplicate: bool
    job_complete: bool
    verdict: str | None = None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; Sabha stores UTC."""
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def render_prompt(template: str, fields: dict[str, str]) -> str:
    """A prompt template filled with an item's input fields."""
    return template.format(**fields)


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


_last_sweep: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_sweep_lock = threading.Lock()


def _note_sweep(db: Engine, every: float | None = None) -> bool:
    """Record a sweep of ``db`` now; with ``every``, only if the last one is that old."""
    moment = time.monotonic()
    with _sweep_lock:
        last = _last_sweep.get(db)
        if every is not None and last is not None and moment - last < every:
            return False
        _last_sweep[db] = moment
        return True


def expire_leases(db: Engine | Session, now: datetime | None = None) -> int:
    """Return every shard whose lease deadline passed to the queue.

    A periodic sweep: ``lease_next_shard`` calls it at most every
    ``LEASE_SWEEP_SECONDS`` and whenever it finds no queued shard. Each
    lapsed run is marked ``expired`` once (the update re-checks its status),
    and its shard is queued again unless it was accepted meanwhile or
    another lease of it is live.

    Returns:
        How many leases expired.
    """
    if isinstance(db, Session):
        return _expire_leases(db, now or utcnow())
    _note_sweep(db)
    with session_scope(db) as session:
        return _expire_leases(session, now or utcnow())


def _expire_leases(session: Session, now: datetime) -> int:
    lapsed = session.exec(
        update(ShardRun)
        .where(col(ShardRun.status) == RunStatus.LEASED, col(ShardRun.expires_at) < now)
        .values(status=RunStatus.EXPIRED, finished_at=now)
        .returning(col(ShardRun.shard_id))
    ).all()
    shard_ids = sorted({shard_id for (shard_id,) in lapsed})
    if shard_ids:
        live = sa.orm.aliased(ShardRun)
        session.exec(
            update(Shard)
            .where(col(Shard.id).in_(shard_ids), col(Shard.status) == ShardStatus.LEASED)
            .where(col(Shard.accepted_run_id).is_(None))
            .where(
                ~sa.exists().where(
                    col(live.shard_id) == Shard.id, col(live.status) == RunStatus.LEASED
                )
            )
            .values(status=ShardStatus.QUEUED)
        )
    return len(lapsed)


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
    if _note_sweep(db, LEASE_SWEEP_SECONDS):
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
        if pool.last_seen_at is None or now - _aware(pool.last_seen_at) > timedelta(
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
            "token_hash": _hash_token(token),
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
        )
        .join(_MODEL, _MODEL.c.id == _JOB.c.model_id)
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
        model=ModelSource(
            name=job.name,
            source="local" if job.source == "local" else "hub",
            path=job.path,
            repo_id=job.repo_id,
            revision=job.revision if job.source == "hub" else None,
        ),
        max_model_len=int(generation.get("max_model_len", 2048)),
        chat_template=generation.get("chat_template", "auto"),
        decoding=DecodingParams.model_validate(job.decoding),
        requests=requests,
        memory_bytes=job.memory_bytes,
    )


def _run_for_token(session: Session, run_id: int, token: str) -> ShardRun:
    # Locked (PostgreSQL) so a sweep or another request cannot change the run meanwhile.
    run = session.get(ShardRun, run_id, with_for_update=True)
    if run is None or not hmac.compare_digest(run.token_hash, _hash_token(token)):
        raise LeaseLost(
            f"Shard run {run_id} is unknown or the token does not match.",
            "Lease a new shard; a lease token is valid only for its own run.",
        )
    return run


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
        run = _run_for_token(session, run_id, token)
        _check_active(session, run.pool_id)
        now = utcnow()
        if run.status != RunStatus.LEASED or _aware(run.expires_at) < now:
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
        run = _run_for_token(session, run_id, token)
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
        run = _run_for_token(session, result.run_id, result.token)
        _check_active(session, run.pool_id)
        shard = session.get(Shard, run.shard_id)
        assert shard is not None
        job_id = run.job_id
        if run.status in (RunStatus.ACCEPTED, RunStatus.SUBMITTED, RunStatus.LATE):
            status, duplicate = RunStatus(run.status), True
        else:
            status, duplicate = _store_results(session, run, shard, result, policy), False
        verdict = run.verdict
    # Read after the commit: two pools submitting a job's last two shards at once
    # each see the other's shard open inside their own transactions, so neither
    # would call the job complete (PostgreSQL, READ COMMITTED).
    with session_scope(db) as session:
        return SubmitOutcome(status, duplicate, _job_complete(session, job_id), verdict)


def _check_active(session: Session, pool_id: int) -> None:
    """Refuse anything from a quarantined pool (it is checked before anything is stored)."""
    pool = session.get(Pool, pool_id)
    assert pool is not None
    if pool.status != PoolStatus.ACTIVE:
        reason = f" ({pool.status_reason})" if pool.status_reason else ""
        raise PoolNotActive(
            f"Pool {pool.name!r} is {pool.status}{reason}: its results are not accepted.",
            "Ask a Sabha operator to review the pool's results and reinstate it; "
            "stop its agent meanwhile.",
        )


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
    on_time = run.status == RunStatus.LEASED and _aware(run.expires_at) >= now
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
        wall = max(0.0, (now - _aware(run.leased_at)).total_seconds())
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
            from .scoring import stats_for_new_outputs

            outputs = session.exec(select(Output).where(Output.shard_run_id == accepted.id)).all()
            stats_for_new_outputs(session, job, list(outputs))
    return RunStatus(run.status)


def _job_complete(session: Session, job_id: int) -> bool:
    open_shards = session.exec(
        select(func.count())
        .select_from(Shard)
        .where(Shard.job_id == job_id, col(Shard.accepted_run_id).is_(None))
    ).one()
    return int(open_shards) == 0


@dataclass(frozen=True)
class JobProgress:
    """How far a job is: shards by state and items with accepted outputs."""

    shards: int
    completed_shards: int
    leased_shards: int
    items: int
    completed_items: int


def job_progress(session: Session, job_id: int) -> JobProgress:
    """Count a job's shards and items by state."""
    shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
    done = [s for s in shards if s.accepted_run_id is not None]
    return JobProgress(
        shards=len(shards),
        completed_shards=len(done),
        leased_shards=sum(1 for s in shards if s.status == ShardStatus.LEASED),
        items=sum(len(s.item_ids) for s in shards),
        completed_items=sum(len(s.item_ids) for s in done),
    )


def create_job(
    session: Session,
    model: Model,
    benchmark: Benchmark,
    shard_size: int | None = None,
    decoding: dict[str, Any] | None = None,
    token_counter: TokenCounter | None = None,
) -> tuple[Job, bool]:
    """Find or create the job of ``model`` on the benchmark's generation identity.

    A new job is cut into shards of at most ``shard_size`` (default
    ``SHARD_SIZE``) items of the evaluated split. ``decoding`` other than the
    benchmark's (a submission's overrides) is another generation identity, so
    another job. A decoding ``budget`` becomes the new job's per-language
    limits, measured with ``token_counter`` (load it with
    ``budgets.load_token_counter`` before the transaction; None counts bytes).

    Returns:
        The job, and whether it was created now.
    """
    decoding = dict(benchmark.decoding) if decoding is None else dict(decoding)
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
    from .scoring import score_job_for_current_benchmarks

    with session_scope(db) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFoundError(f"There is no job {job_id}.", "Check the job id.")
        if not _job_complete(session, job_id):
            return False
        if audit_job(session, job_id, policy or VerificationPolicy.from_settings()):
            return False
        score_job_for_current_benchmarks(session, job)
        if job.status != JobStatus.COMPLETED:
            job.status = JobStatus.COMPLETED
            job.finished_at = utcnow()
            job.error = None
    return True


@dataclass(frozen=True)
class ShardState:
    """One shard as an operator sees it: its runs and the one that counts."""

    index: int
    items: int
    status: str
    runs: list[tuple[int, str, str]]  # (attempt, run status, pool name)
    accepted_pool: str | None
    # The live lease has sent a heartbeat since it was taken: the pool is working on it.
    running: bool = False
    # Why the latest run that did not finish stopped (released or expired), if it did.
    reason: str | None = None


def shard_states(session: Session, job_id: int) -> list[ShardState]:
    """Every shard of a job with its runs, in order."""
    shards = session.exec(
        select(Shard).where(Shard.job_id == job_id).order_by(col(Shard.index))
    ).all()
    runs: dict[int, list[tuple[ShardRun, str]]] = {}
    for run, pool_name in session.exec(
        select(ShardRun, Pool.name)
        .join(Pool, col(Pool.id) == ShardRun.pool_id)
        .where(ShardRun.job_id == job_id)
        .order_by(col(ShardRun.id))
    ):
        runs.setdefault(run.shard_id, []).append((run, pool_name))
    states = []
    for shard in shards:
        shard_runs = runs.get(id_of(shard), [])
        accepted = next((p for r, p in shard_runs if r.id == shard.accepted_run_id), None)
        live = [r for r, _ in shard_runs if r.status == RunStatus.LEASED]
        stopped = [r for r, _ in shard_runs if r.status in (RunStatus.RELEASED, RunStatus.EXPIRED)]
        reason = None
        if stopped and shard.accepted_run_id is None:
            last = stopped[-1]
            reason = last.error or (
                "the pool's lease expired without results"
                if last.status == RunStatus.EXPIRED
                else "the pool handed the shard back"
            )
        states.append(
            ShardState(
                index=shard.index,
                items=len(shard.item_ids),
                status=shard.status,
                runs=[(r.attempt, r.status, p) for r, p in shard_runs],
                accepted_pool=accepted,
                running=any(
                    r.heartbeat_at is not None and _aware(r.heartbeat_at) > _aware(r.leased_at)
                    for r in live
                ),
                reason=reason,
            )
        )
    return states
