"""Long-poll leasing: requests that wait for work, at most so many per process, sharing one probe.

A pool that asks for shards while none is queued may wait for them
(``POST /api/v1/leases/batch`` with ``wait_seconds``) instead of asking again
every few seconds. Each waiting request holds a web thread, so a process
holds at most ``capacity`` of them; beyond that a request is answered at once
(the caller says when to ask again). The waiters do not each poll the
database: they share one cheap probe of the queue (the first queued shard in
lease order and the newest shard), run at most every ``probe_seconds``, and a
waiter tries to lease again when the probe changed since its last try, or
every ``LEASE_SWEEP_SECONDS`` in any case (a lapsed lease comes back through
the sweep, which the probe does not see). A pool waits with one request at a
time per process: a second is answered at once, like one beyond the cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sabha.platform.domain import Shard, ShardStatus
from sabha.platform.wire import ShardLease

from .common import LEASE_SWEEP_SECONDS

__all__ = ["LeaseWaiters"]

_SHARD: sa.Table = Shard.__table__  # type: ignore[attr-defined]

_PROBE = sa.select(
    sa.select(_SHARD.c.id)
    .where(_SHARD.c.status == str(ShardStatus.QUEUED))
    .order_by(_SHARD.c.job_id, _SHARD.c.index)
    .limit(1)
    .scalar_subquery(),
    sa.select(sa.func.max(_SHARD.c.id)).scalar_subquery(),
)
"""The queue's state, cheaply (the partial index of queued shards, the primary key)."""


class LeaseWaiters:
    """The waiting lease requests of one process.

    Args:
        db: The database.
        capacity: The most requests that wait at once (0: none waits).
        probe_seconds: The least time between two probes of the queue.
    """

    def __init__(self, db: Engine, capacity: int, probe_seconds: float = 0.25) -> None:
        self.db = db
        self.capacity = capacity
        self.probe_seconds = probe_seconds
        self._slots = threading.BoundedSemaphore(capacity) if capacity > 0 else None
        self._waiting: set[int] = set()  # pools with a request waiting here
        self._waiting_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._probed_at = float("-inf")
        self._probed: tuple[int | None, int | None] = (None, None)

    def lease(
        self, take: Callable[[], list[ShardLease]], wait_seconds: float, pool_id: int
    ) -> list[ShardLease] | None:
        """``take()`` now; when it leased nothing, again as work arrives, up to ``wait_seconds``.

        A pool has at most one waiting request per process, so one pool cannot
        take every waiting place from the others.

        Returns:
            The leases (empty: none came in time), or None when nothing was
            queued and every waiting place of this process is taken, or the
            pool already waits here: the caller should ask again later.
        """
        leases = take()
        if leases or wait_seconds <= 0:
            return leases
        with self._waiting_lock:
            if pool_id in self._waiting:
                return None
            if self._slots is None or not self._slots.acquire(blocking=False):
                return None
            self._waiting.add(pool_id)
        try:
            deadline = time.monotonic() + wait_seconds
            seen = self.probe()
            tried = time.monotonic()
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(self.probe_seconds, left))
                now = self.probe()
                if now != seen or time.monotonic() - tried >= LEASE_SWEEP_SECONDS:
                    seen, tried = now, time.monotonic()
                    if leases := take():
                        return leases
            return []
        finally:
            with self._waiting_lock:
                self._waiting.discard(pool_id)
                self._slots.release()

    def probe(self) -> tuple[int | None, int | None]:
        """The first queued shard and the newest shard: one query a ``probe_seconds`` at most."""
        with self._probe_lock:  # the other waiters use what one of them just read
            if time.monotonic() - self._probed_at >= self.probe_seconds:
                with self.db.connect() as connection:
                    first, newest = connection.execute(_PROBE).one()
                self._probed = (first, newest)
                self._probed_at = time.monotonic()
            return self._probed
