"""The verification policy: its thresholds, who is trusted, which results wait for a replica.

A trusted pool (the operator's own) is never replicated; a new volunteer
pool's every result is; a proven pool's ``fraction`` of results is, drawn by
a keyed hash of the run after its result arrived (``keyed_draw``), so the
pool cannot tell which.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from sqlmodel import Session, col, func, select

from sabha.platform.domain import (
    CheckReason,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    Shard,
    ShardRun,
)
from sabha.platform.settings import Settings

__all__ = [
    "VerificationPolicy",
    "is_proven",
    "is_trusted",
    "keyed_draw",
    "needs_replica",
    "owner_key",
    "reputation_of",
    "waiting_results",
]


@dataclass(frozen=True)
class VerificationPolicy:
    """How much replication is asked for and how replicas are compared (see the package).

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


def keyed_draw(policy: VerificationPolicy, what: str) -> float:
    """A keyed draw in [0, 1): the same for the same ``what``, unpredictable without the key."""
    digest = hmac.new(policy.key.encode(), what.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _picked(policy: VerificationPolicy, what: str, share: float) -> bool:
    """True for about ``share`` of the values of ``what``."""
    return keyed_draw(policy, what) < share


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
