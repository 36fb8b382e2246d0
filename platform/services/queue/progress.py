"""How far a job is: shards by state, and each shard's runs as an operator sees them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session, col, select

from sabha.platform.domain import (
    Pool,
    RunStatus,
    Shard,
    ShardRun,
    ShardStatus,
    as_utc,
    id_of,
)

_log = logging.getLogger(__name__)

__all__ = [
    "JobProgress",
    "ShardState",
    "job_progress",
    "shard_states",
]


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


@dataclass(frozen=True)
class ShardState:
    """One shard as an operator sees it: its runs and the one that counts."""

    index: int
    items: int
    status: ShardStatus
    runs: list[tuple[int, RunStatus, str]]  # (attempt, run status, pool name)
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
                    r.heartbeat_at is not None and as_utc(r.heartbeat_at) > as_utc(r.leased_at)
                    for r in live
                ),
                reason=reason,
            )
        )
    return states
