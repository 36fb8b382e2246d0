"""Verified results on SQLite and PostgreSQL: replicas, majority, reputation, quarantine.

Queue-level tests (no vLLM): pools are driven through the queue functions with
answers computed from the prompt, as an honest engine would give the same
answer for the same prompt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from verifytools import (
    ALL_NEW,
    H100,
    L4,
    PROVEN,
    _answer,
    _benchmark_and_job,
    _overall,
    _trusted_scores,
    _volunteer,
    _work,
    forged,
    honest,
)

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    LeaderboardEntry,
    Output,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    RunVerdict,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
)
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import finalize_job, lease_next_shard
from sabha.platform.services.verification import (
    RunOutputs,
    VerificationPolicy,
    compare_runs,
    quarantine_pool,
    reputation_of,
)

pytestmark = pytest.mark.postgresql


def test_two_machines_of_one_kind_that_differ_slightly_agree() -> None:
    """Greedy outputs differ between machines of the same kind: no byte-for-byte rule."""
    a = {1: ("Panda mahindi sasa.", None), 2: ("", "prompt too long: 9000")}
    b = {1: ("Panda mahindi sasa!", None), 2: ("", "prompt too long: 9001")}
    same = H100.model_dump()
    identical = compare_runs(RunOutputs(a, same), RunOutputs(a, same), {}, ALL_NEW)
    assert identical.exact and identical.agree
    one_char = compare_runs(RunOutputs(a, same), RunOutputs(b, same), {}, ALL_NEW)
    assert one_char.agree and not one_char.exact
    split = H100.model_copy(update={"tensor_parallel_size": 2}).model_dump()
    across = compare_runs(RunOutputs(a, same), RunOutputs(b, split), {}, ALL_NEW)
    assert across.agree and not across.exact


def test_small_drift_across_hardware_agrees_and_forgery_does_not() -> None:
    references = {i: "Panda mwanzoni mwa mvua za masika kila mwaka." for i in range(10)}
    base = {i: ("Panda mwanzoni mwa mvua za masika kila mwaka.", None) for i in range(10)}
    drift = dict(base)
    drift[3] = ("Panda mwanzoni mwa mvua za masika.", None)
    fake = {i: ("Maji mengi sana kwa kila shamba.", None) for i in range(10)}
    h100, l4 = H100.model_dump(), L4.model_dump()
    close = compare_runs(RunOutputs(base, h100), RunOutputs(drift, l4), references, ALL_NEW)
    assert close.agree and not close.exact and close.item_share == 1.0
    far = compare_runs(RunOutputs(base, h100), RunOutputs(fake, l4), references, ALL_NEW)
    assert not far.agree and far.item_share == 0.0 and far.score_delta > 5
    errors = {i: ("", "tokenizer failed: bad bytes") for i in range(10)}
    assert not compare_runs(RunOutputs(base, h100), RunOutputs(errors, l4), {}, ALL_NEW).agree


def test_new_pool_results_wait_for_another_owners_replica(db: Engine, tmp_path: Path) -> None:
    job_id = _benchmark_and_job(db, tmp_path, n_items=2)
    alice = _volunteer(db, "alice-gpu", "alice")
    with session_scope(db) as session:
        alice_id = session.exec(select(Pool.owner_id).where(Pool.id == alice)).one()
    alice_laptop = register_pool(db, "alice-laptop", PoolKind.REMOTE, None, alice_id)
    bob = _volunteer(db, "bob-gpu", "bob")
    assert _answer(db, alice, honest, ALL_NEW) == RunStatus.SUBMITTED
    with Session(db) as session:
        shard = session.exec(select(Shard).where(Shard.job_id == job_id)).one()
        assert shard.accepted_run_id is None and shard.status == ShardStatus.QUEUED
        assert shard.replicas == 2
    assert lease_next_shard(db, alice) is None  # never the shard it ran
    assert lease_next_shard(db, alice_laptop) is None  # nor to its owner's other pool
    assert _answer(db, bob, honest, ALL_NEW) == RunStatus.SUBMITTED
    assert finalize_job(db, job_id)
    with Session(db) as session:
        shard = session.exec(select(Shard).where(Shard.job_id == job_id)).one()
        runs = session.exec(select(ShardRun).order_by(col(ShardRun.id))).all()
        assert [(r.pool_id, r.replica, r.verdict) for r in runs] == [
            (alice, 0, RunVerdict.AGREED),
            (bob, 1, RunVerdict.AGREED),
        ]
        assert shard.accepted_run_id == runs[0].id and runs[0].status == RunStatus.ACCEPTED
        assert {
            p.name: p.agreements for p in session.exec(select(Pool).where(Pool.kind == "remote"))
        } == {
            "alice-gpu": 1,
            "alice-laptop": 0,
            "bob-gpu": 1,
        }
        scoring = session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).one()
        assert scoring.pools == ["alice-gpu", "bob-gpu"]


def test_disagreement_asks_a_third_replica_and_the_majority_wins(
    db: Engine, tmp_path: Path
) -> None:
    job_id = _benchmark_and_job(db, tmp_path, n_items=2)
    mallory, alice, bob = (_volunteer(db, n) for n in ("mallory", "alice", "bob"))
    policy = VerificationPolicy(new_pool_shards=1000)
    assert _answer(db, mallory, forged, policy) == RunStatus.SUBMITTED
    assert _answer(db, alice, honest, policy) == RunStatus.SUBMITTED
    with Session(db) as session:  # two owners disagree: no verdict, nobody accepted yet
        shard = session.exec(select(Shard).where(Shard.job_id == job_id)).one()
        assert shard.accepted_run_id is None and shard.status == ShardStatus.QUEUED
        pools = session.exec(select(Pool).where(Pool.kind == "remote")).all()
        assert {(p.status, p.disagreements) for p in pools} == {(PoolStatus.ACTIVE, 0)}
    assert _answer(db, bob, honest, policy) == RunStatus.SUBMITTED
    with Session(db) as session:
        shard = session.exec(select(Shard).where(Shard.job_id == job_id)).one()
        runs = {r.pool_id: r for r in session.exec(select(ShardRun))}
        assert shard.accepted_run_id == runs[alice].id
        assert runs[mallory].verdict == RunVerdict.DISAGREED
        assert runs[bob].verdict == RunVerdict.AGREED
        counts = {
            p.name: (p.agreements, p.disagreements)
            for p in session.exec(select(Pool).where(Pool.kind == "remote"))
        }
        assert counts == {"mallory": (0, 1), "alice": (1, 0), "bob": (1, 0)}
        assert session.get(Pool, mallory).reputation == reputation_of(0, 1) == 0.5  # type: ignore[union-attr]
        statuses = {
            p.name: p.status for p in session.exec(select(Pool).where(Pool.kind == "remote"))
        }
        assert statuses == {
            "mallory": PoolStatus.QUARANTINED,  # outvoted by two other owners: at once
            "alice": PoolStatus.ACTIVE,
            "bob": PoolStatus.ACTIVE,
        }


def test_forged_pool_is_quarantined_and_absent_from_the_scores(db: Engine, tmp_path: Path) -> None:
    expected = _trusted_scores(db, tmp_path)
    job_id = _benchmark_and_job(db, tmp_path)
    mallory = _volunteer(db, "mallory")
    honest_pools = [_volunteer(db, n) for n in ("alice", "bob", "chen")]
    policy = VerificationPolicy(new_pool_shards=1000, fraction=0.0)
    _work(db, {mallory: forged, **dict.fromkeys(honest_pools, honest)}, policy)
    assert finalize_job(db, job_id)
    with Session(db) as session:
        pool = session.get(Pool, mallory)
        assert pool is not None and pool.status == PoolStatus.QUARANTINED
        assert pool.status_reason and "disagreed with the accepted results" in pool.status_reason
        counted = session.exec(
            select(Output.text)
            .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
            .where(Shard.job_id == job_id)
        ).all()
        assert len(counted) == 8 and "Maji mengi sana kwa kila shamba." not in counted
        statuses = {session.get_one(Pool, p).status for p in honest_pools}
        assert statuses == {PoolStatus.ACTIVE}
        scoring = session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).one()
        assert "mallory" not in scoring.pools and set(scoring.pools) <= {"alice", "bob", "chen"}
    assert _overall(db, job_id) == expected


def test_quarantine_withdraws_unverified_results_and_their_scores(
    db: Engine, tmp_path: Path
) -> None:
    expected = _trusted_scores(db, tmp_path)
    job_id = _benchmark_and_job(db, tmp_path)
    mallory = _volunteer(db, "mallory")
    unaudited = VerificationPolicy(new_pool_shards=0, fraction=0.0, audit_jobs=False)
    _work(db, {mallory: forged}, unaudited)  # a proven pool, nothing replicated or audited
    assert finalize_job(db, job_id, unaudited) and _overall(db, job_id) != expected
    with session_scope(db) as session:
        pool = session.get(Pool, mallory)
        assert pool is not None
        assert quarantine_pool(session, pool, "caught on another job") == [job_id]
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.RUNNING and job.finished_at is None
        assert session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).all() == []
        assert (
            session.exec(select(LeaderboardEntry).where(LeaderboardEntry.job_id == job_id)).all()
            == []
        )
        shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
        assert {(s.status, s.accepted_run_id) for s in shards} == {(ShardStatus.QUEUED, None)}
        runs = session.exec(select(ShardRun).where(ShardRun.pool_id == mallory)).all()
        assert {(r.status, r.verdict) for r in runs} == {
            (RunStatus.SUBMITTED, RunVerdict.WITHDRAWN)
        }
    alice, bob = _volunteer(db, "alice"), _volunteer(db, "bob")
    _work(db, {mallory: forged, alice: honest, bob: honest}, PROVEN)  # recomputed elsewhere
    assert not finalize_job(db, job_id)  # first one shard of each pool is audited
    _work(db, {alice: honest, bob: honest}, PROVEN)
    assert finalize_job(db, job_id)
    assert _overall(db, job_id) == expected
    with Session(db) as session:
        benchmark = session.exec(select(Benchmark)).one()
        entry = session.exec(
            select(LeaderboardEntry).where(
                LeaderboardEntry.job_id == job_id, LeaderboardEntry.benchmark_id == benchmark.id
            )
        ).one()
        assert entry.cells["scores"]["chrf++"]["value"] == pytest.approx(
            expected["chrf++"], abs=1e-4
        )


def test_trusted_result_settles_waiting_replicas(db: Engine, tmp_path: Path) -> None:
    job_id = _benchmark_and_job(db, tmp_path, n_items=4)
    alice, mallory = _volunteer(db, "alice"), _volunteer(db, "mallory")
    policy = VerificationPolicy(new_pool_shards=1000)
    assert _answer(db, alice, honest, policy) == RunStatus.SUBMITTED  # shard 0
    assert _answer(db, mallory, forged, policy) == RunStatus.SUBMITTED  # shard 1
    local = register_pool(db, "local")
    _work(db, {local: honest}, policy)
    assert finalize_job(db, job_id)
    with Session(db) as session:
        runs = {r.pool_id: r for r in session.exec(select(ShardRun))}
        assert runs[alice].verdict == RunVerdict.AGREED
        assert runs[mallory].verdict == RunVerdict.DISAGREED
        accepted = session.exec(select(Shard.accepted_run_id)).all()
        local_runs = session.exec(select(ShardRun.id).where(ShardRun.pool_id == local)).all()
        assert sorted(accepted) == sorted(local_runs)


def test_proven_pools_are_replicated_by_the_configured_fraction(db: Engine, tmp_path: Path) -> None:
    _benchmark_and_job(db, tmp_path, n_items=4)
    alice = _volunteer(db, "alice")
    assert _answer(db, alice, honest, PROVEN) == RunStatus.ACCEPTED
    always = VerificationPolicy(new_pool_shards=0, fraction=1.0)
    assert _answer(db, alice, honest, always) == RunStatus.SUBMITTED
    with Session(db) as session:
        assert [s.replicas for s in session.exec(select(Shard).order_by(col(Shard.index)))] == [
            1,
            2,
        ]


def test_shards_go_only_to_pools_whose_memory_holds_the_model(db: Engine, tmp_path: Path) -> None:
    job_id = _benchmark_and_job(db, tmp_path, n_items=2)
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.memory_bytes = 17 * 10**9
    small = register_pool(db, "laptop", PoolKind.REMOTE, {"memory_bytes": 8 * 10**9})
    large = register_pool(db, "a100", PoolKind.REMOTE, {"memory_bytes": 40 * 10**9})
    assert lease_next_shard(db, small) is None
    lease = lease_next_shard(db, large)
    assert lease is not None and lease.job_id == job_id
    other = _benchmark_and_job(db, tmp_path, model="no-estimate", n_items=2)
    lease = lease_next_shard(db, small)  # a job without an estimate goes to any pool
    assert lease is not None and lease.job_id == other
