"""Verified results: replicas on pools of different owners, earned trust, quarantine.

Volunteer pools are not trusted; what they post counts only when it is
verified, and trust is earned only by verification (docs/verification.md):

- The operator's own pools (``local``: ``sabha eval``) are trusted: their
  results are accepted at once and settle any replicas waiting.
- A volunteer pool is **new** until ``new_pool_shards`` of its results were
  verified by agreeing runs of other owners' pools (agreements, never the
  number of results it posted). Every result of a new pool waits for such a
  replica before it counts, and a new pool holds at most ``new_pool_shards``
  results waiting at once (more leases wait), so rushing buys nothing.
- A **proven** pool's results count at once, except a ``fraction`` of them,
  picked after each result arrives by a keyed hash of its run (the pool
  cannot tell which), which wait for a replica; and before a job is scored,
  every proven pool whose results it uses must have at least one of its
  shards in that job verified (``audit_job``), so a pool that turns to
  forging cannot get a job published on its word alone.
- Two runs **agree** when their outputs are identical, or within the
  measured tolerance for honest setups that differ: at least ``item_share``
  of the items have a chrF similarity of at least ``item_chrf``, and the two
  runs' shard chrF against the references differ by at most ``score_delta``.
- When runs disagree, no verdict is given: the shard goes back to the queue
  for another replica (never to a pool or owner that already ran it). The
  oldest run that two owners' runs agree with is accepted. A pool whose run
  is outvoted that way (or disagrees with a trusted pool's) is **quarantined
  at once**: it leases nothing and its results are refused, its waiting
  results are withdrawn, and its accepted results that no other owner
  verified are un-accepted, their shards re-queued and the scores built on
  them withdrawn until they are recomputed elsewhere.

The package's modules, one concept each: ``policy`` (the thresholds, who is
trusted, which results are replicated), ``compare`` (when two runs agree),
``settle`` (a new result's verdict) and ``audit`` (re-opening results: the
job audit, quarantine).
"""

from __future__ import annotations

from .audit import audit_job, quarantine_pool, reinstate_pool
from .compare import Comparison, RunOutputs, compare_runs
from .policy import (
    VerificationPolicy,
    is_proven,
    is_trusted,
    needs_replica,
    owner_key,
    reputation_of,
    waiting_results,
)
from .settle import settle_shard

__all__ = [
    "Comparison",
    "RunOutputs",
    "VerificationPolicy",
    "audit_job",
    "compare_runs",
    "is_proven",
    "is_trusted",
    "needs_replica",
    "owner_key",
    "quarantine_pool",
    "reinstate_pool",
    "reputation_of",
    "settle_shard",
    "waiting_results",
]
