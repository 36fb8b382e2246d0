"""What the queue's parts share: its constants, errors and small checks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from sabha.platform.domain import (
    JobStatus,
    Pool,
    PoolStatus,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
)
from sabha.platform.errors import PermissionDenied, SabhaError

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "EVALUATION_SPLIT",
    "LEASABLE_JOBS",
    "LEASE_SWEEP_SECONDS",
    "RESULT_STATUSES",
    "SEEN_EVERY_SECONDS",
    "SHARD_SIZE",
    "LeaseLost",
    "PoolNotActive",
    "ResultRejected",
    "SubmitOutcome",
    "check_active",
    "hash_token",
    "job_complete",
    "run_for_token",
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

    status: RunStatus
    duplicate: bool
    job_complete: bool
    verdict: RunVerdict | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def run_for_token(session: Session, run_id: int, token: str) -> ShardRun:
    # Locked (PostgreSQL) so a sweep or another request cannot change the run meanwhile.
    run = session.get(ShardRun, run_id, with_for_update=True)
    if run is None or not hmac.compare_digest(run.token_hash, hash_token(token)):
        raise LeaseLost(
            f"Shard run {run_id} is unknown or the token does not match.",
            "Lease a new shard; a lease token is valid only for its own run.",
        )
    return run


def check_active(session: Session, pool_id: int) -> None:
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


def job_complete(session: Session, job_id: int) -> bool:
    open_shards = session.exec(
        select(func.count())
        .select_from(Shard)
        .where(Shard.job_id == job_id, col(Shard.accepted_run_id).is_(None))
    ).one()
    return int(open_shards) == 0
