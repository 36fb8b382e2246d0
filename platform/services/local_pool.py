"""``sabha eval``'s pool: the volunteer's ``Agent``, with the platform in this process.

``sabha eval`` (and ``sabha annotations judge --run-here``) run the very agent
that ``sabha worker run`` runs (``sabha.workers.agent``: its engine slots,
heartbeats, spool and poster); only the platform client differs.
``InProcessPlatform`` answers the agent's register, lease, heartbeat,
submit and release by calling the queue directly instead of over HTTP. It
leases only the given jobs' shards, finalizes a job when its last shard is
accepted, and stops the agent once every job is complete. Two ``sabha eval``
processes on the same job are two pools sharing its shards; a killed one loses
only the shards it had in flight (their leases expire and the shards return
to the queue).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.db import session_scope
from sabha.platform.domain import Job, JobStatus, Pool, RunStatus, Shard, ShardRun, ShardStatus
from sabha.platform.errors import EngineError, SabhaError
from sabha.platform.wire import PoolInfo, PoolRegistration, ShardLease, ShardResult, SubmitReceipt
from sabha.workers.agent import Agent, AgentOptions, EngineFactory
from sabha.workers.platform_client import LeaseGone, PlatformRefused
from sabha.workers.spool import MemorySpool

from .pools import pool_info, register_pool
from .queue import (
    DEFAULT_LEASE_SECONDS,
    LeaseLost,
    finalize_job,
    heartbeat_lease,
    lease_next_shard,
    release_lease,
    submit_shard_results,
)

__all__ = ["InProcessPlatform", "local_pool_name", "run_local_pool"]

ProgressCallback = Callable[[int], None]

STUCK = SabhaError(
    "Some shards can be neither leased nor finished.",
    "Check the jobs' status with `sabha jobs show`.",
)


def local_pool_name() -> str:
    """The name of this process's local pool: two `sabha eval` at once are two pools.

    ``local-<host>-<pid>``, in the characters every pool name is made of.
    """
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-.") or "host"
    return f"local-{host}-{os.getpid()}"[:200]


class InProcessPlatform:
    """The agent's platform client (``workers.platform_client.PlatformClient``) in-process.

    Args:
        db: The database.
        job_ids: The jobs whose shards it leases.
        lease_seconds: How long a lease holds without a heartbeat.
        progress: Told the number of items of each stored shard.
    """

    def __init__(
        self,
        db: Engine,
        job_ids: Sequence[int],
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.db = db
        self.job_ids = list(job_ids)
        self.lease_seconds = lease_seconds
        self.progress = progress
        self.agent: Agent | None = None  # stopped once every job is complete
        self.failure: SabhaError | None = None  # why the evaluation cannot go on
        self.pool_id: int | None = None
        self._jobs_of_runs: dict[int, int] = {}
        self.finalized: set[int] = set()  # jobs this pool completed and scored
        self._lock = threading.Lock()
        self._gate = threading.Lock()

    # -- the agent's calls -----------------------------------------------------------

    def register(self, registration: PoolRegistration) -> PoolInfo:
        self.pool_id = register_pool(self.db, registration.name, capabilities={"pid": os.getpid()})
        with Session(self.db) as session:
            pool = session.get(Pool, self.pool_id)
            assert pool is not None
            return pool_info(pool)

    def lease(self) -> ShardLease | None:
        assert self.pool_id is not None, "register first"
        with self._gate:  # never while a refused shard is being handed back
            if self.failure is not None:  # stopping: take nothing more
                return None
            lease = lease_next_shard(self.db, self.pool_id, self.job_ids, self.lease_seconds)
        if lease is not None:
            with self._lock:
                self._jobs_of_runs[lease.run_id] = lease.job_id
        elif self.jobs_complete():
            self._stop()
        elif not self._leases_held() and not self.jobs_complete():
            # Nobody holds a lease (this pool's finished results are posted),
            # yet a shard is neither queued nor accepted.
            self._stop(STUCK)
        return lease

    def heartbeat(self, run_id: int, token: str) -> datetime:
        try:
            return heartbeat_lease(self.db, run_id, token, self.lease_seconds)
        except LeaseLost as exc:  # a late result is still kept
            raise LeaseGone(exc.message, exc.hint or "", 409) from exc

    def submit(self, result: ShardResult) -> SubmitReceipt:
        try:
            outcome = submit_shard_results(self.db, result)
        except Exception as exc:  # refused (our own engine's answers), or the database failed
            reason = exc.message if isinstance(exc, SabhaError) else f"{type(exc).__name__}: {exc}"
            with self._gate:  # stop first, so the shard handed back is not leased again
                self._stop(
                    EngineError(
                        f"Evaluation stopped: {reason}",
                        "Finished shards are saved; run the same `sabha eval` command again "
                        "to resume.",
                    )
                )
                with contextlib.suppress(Exception):  # else the lease expires
                    release_lease(self.db, result.run_id, result.token, reason)
            raise PlatformRefused(reason) from exc
        if self.progress:
            self.progress(len(result.results))
        if outcome.job_complete:
            with self._lock:
                job_id = self._jobs_of_runs.get(result.run_id)
            if job_id is not None and finalize_job(self.db, job_id):
                self.finalized.add(job_id)
            if self.jobs_complete():
                self._stop()
        return SubmitReceipt(
            status=outcome.status,
            duplicate=outcome.duplicate,
            job_complete=outcome.job_complete,
            verdict=outcome.verdict,
        )

    def submit_batch(self, results: Sequence[ShardResult]) -> None:
        """One result per call here: each stored shard may stop the evaluation (``submit``)."""
        return None

    def release(self, run_id: int, token: str, reason: str | None = None) -> None:
        try:
            release_lease(self.db, run_id, token, reason)
        except LeaseLost as exc:
            raise LeaseGone(exc.message, exc.hint or "", 409) from exc

    # -- the jobs --------------------------------------------------------------------

    def jobs_complete(self) -> bool:
        """Whether every shard of the jobs has an accepted run."""
        with Session(self.db) as session:
            open_shard = session.exec(
                select(Shard.id).where(
                    col(Shard.job_id).in_(self.job_ids), col(Shard.accepted_run_id).is_(None)
                )
            ).first()
            return open_shard is None

    def _leases_held(self) -> bool:
        """Whether any pool (this one included) holds a live lease on the jobs."""
        with Session(self.db) as session:
            held = session.exec(
                select(ShardRun.id).where(
                    col(ShardRun.job_id).in_(self.job_ids),
                    ShardRun.status == RunStatus.LEASED,
                )
            ).first()
            return held is not None

    def _stop(self, failure: SabhaError | None = None) -> None:
        if failure is not None and self.failure is None:
            self.failure = failure
        if self.agent is not None:
            self.agent.stop(failure.message if failure else "the evaluation is complete")


def run_local_pool(
    db: Engine,
    job_ids: Sequence[int],
    engine_factory: EngineFactory,
    pool_name: str | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    max_in_flight: int | None = None,
    progress: ProgressCallback | None = None,
    wait_for_others: float = 1.0,
) -> None:
    """Run the shards of ``job_ids`` (one model's jobs) until every job is complete.

    The agent's one engine starts only once a shard is leased, and stays up
    for all the jobs. At most ``max_in_flight`` items are in the engine at once
    (default: twice the engine's own batch, ``max_num_seqs``). When the queue
    is empty but other pools still hold leases on these jobs, it asks again
    every ``wait_for_others`` seconds (their shards come back if their leases
    expire).

    On any failure or Ctrl-C the agent hands back its leases, so the shards go
    back to the queue at once, and jobs left without a live lease are marked
    queued (Ctrl-C) or failed with the reason (an engine failure).

    Raises:
        EngineError: the engine could not load the model, died, or answered
            other items than it was asked.
        KeyboardInterrupt: Ctrl-C.
    """
    platform = InProcessPlatform(db, job_ids, lease_seconds, progress)
    agent = Agent(
        platform,
        engine_factory,
        MemorySpool(),
        AgentOptions(
            pool_name=pool_name or local_pool_name(),
            items_per_engine=max_in_flight,
            poll_seconds=wait_for_others,
            heartbeat_seconds=max(lease_seconds / 3, 0.5),
            stop_on_engine_failure=True,
        ),
    )
    platform.agent = agent
    try:
        summary = agent.run()  # hands back its leases whatever happens
    except Exception as exc:  # e.g. the database went away: nothing in flight is kept
        why = exc.message if isinstance(exc, SabhaError) else f"{type(exc).__name__}: {exc}"
        settle_jobs(db, job_ids, why)
        raise EngineError(
            f"Evaluation stopped: {why}",
            "Finished shards are saved; run the same `sabha eval` command again to resume.",
        ) from exc
    if summary.interrupted:
        settle_jobs(db, job_ids, None)
        raise KeyboardInterrupt
    failure = platform.failure
    reason = failure.message if failure else None
    if summary.engine_error is not None:
        reason = summary.engine_failures[0]
        failure = (
            summary.engine_error
            if isinstance(summary.engine_error, EngineError)
            else EngineError(
                f"Evaluation stopped: {reason}",
                "Finished shards are saved; run the same `sabha eval` command again to resume.",
            )
        )
    if failure is not None:
        settle_jobs(db, job_ids, reason)
        raise failure
    for job_id in job_ids:  # another pool may have submitted the last shard
        if job_id not in platform.finalized:  # scoring again would only cost time
            finalize_job(db, job_id)


def settle_jobs(db: Engine, job_ids: Sequence[int], error: str | None) -> None:
    """Leave no job ``running`` without a live lease: queued again, or failed with ``error``."""
    with session_scope(db) as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            if job is None or job.status == JobStatus.COMPLETED:
                continue
            live = session.exec(
                select(ShardRun.id).where(
                    ShardRun.job_id == job_id, ShardRun.status == RunStatus.LEASED
                )
            ).first()
            if live is not None:
                continue
            job.status = JobStatus.FAILED if error else JobStatus.QUEUED
            job.error = error
            for shard in session.exec(
                select(Shard).where(Shard.job_id == job_id, Shard.status == ShardStatus.LEASED)
            ):
                shard.status = ShardStatus.QUEUED
