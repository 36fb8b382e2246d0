"""The work queue: the one module that leases shards and takes their results.

Every pool goes through these functions: the local ``sabha eval`` calls them
in-process, volunteer pools will call them over HTTPS. The database is the
source of truth: a lease is a ``shard_run`` row with a deadline and a hashed
token; a shard counts the outputs of exactly one run (``accepted_run_id``).

- ``lease_shards`` (``lease_next_shard`` is its one-shard case): one ``WITH
  picked AS MATERIALIZED (SELECT ... LIMIT n) UPDATE shard ... RETURNING``
  picks and claims up to n shards (on PostgreSQL the pick is ``FOR UPDATE
  SKIP LOCKED``, on SQLite writers are serialised by ``BEGIN IMMEDIATE``),
  and one multi-row ``INSERT`` opens their runs, so two pools never hold a
  shard at once and a batch costs about the round trips of one lease.
- ``LeaseWaiters``: a lease request that found nothing may wait for work
  (long-poll); a process holds only so many waiting, and they share one
  cheap probe of the queue instead of each polling the database.
- ``expire_leases`` is a sweep, not part of every lease: ``lease_shards``
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

from .common import (
    DEFAULT_LEASE_SECONDS,
    LEASE_SWEEP_SECONDS,
    SHARD_SIZE,
    LeaseLost,
    PoolNotActive,
    ResultRejected,
    SubmitOutcome,
)
from .jobs import create_job, finalize_job, finish_complete_jobs
from .leases import heartbeat_lease, lease_next_shard, lease_shards, release_lease
from .long_poll import LeaseWaiters
from .progress import JobProgress, ShardState, job_progress, shard_states
from .results import submit_shard_results, submit_shard_results_batch
from .sweep import expire_leases

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LEASE_SWEEP_SECONDS",
    "SHARD_SIZE",
    "JobProgress",
    "LeaseLost",
    "LeaseWaiters",
    "PoolNotActive",
    "ResultRejected",
    "ShardState",
    "SubmitOutcome",
    "create_job",
    "expire_leases",
    "finalize_job",
    "finish_complete_jobs",
    "heartbeat_lease",
    "job_progress",
    "lease_next_shard",
    "lease_shards",
    "release_lease",
    "shard_states",
    "submit_shard_results",
    "submit_shard_results_batch",
]
