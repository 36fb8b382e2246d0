"""The sweep: leases past their deadline go back to the queue (at most every few seconds)."""

from __future__ import annotations

import threading
import time
import weakref
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, update

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    RunStatus,
    Shard,
    ShardRun,
    ShardStatus,
    utcnow,
)

__all__ = ["expire_leases", "note_sweep"]


_last_sweep: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


_sweep_lock = threading.Lock()


def note_sweep(db: Engine, every: float | None = None) -> bool:
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
        return _expire_lapsed(db, now or utcnow())
    note_sweep(db)
    with session_scope(db) as session:
        return _expire_lapsed(session, now or utcnow())


def _expire_lapsed(session: Session, now: datetime) -> int:
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
