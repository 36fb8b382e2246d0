"""Pools that cheat, at the queue (issue: volunteer results no cheater can get published).

Each test is one way a cheating volunteer tried to get a forged number
published, or one way an honest volunteer was wrongly caught; each failed on
the code before the fix. The same people over HTTP, with real agents and
gunicorn, are in ``test_pool_cheaters.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from verifytools import (
    H100,
    L4,
    Answer,
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
    Model,
    Output,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    ScoringRun,
    Shard,
    ShardRun,
    id_of,
    utcnow,
)
from sabha.platform.services.estimate import MAX_ENGINE_BYTES, PoolSize, known_pool_sizes
from sabha.platform.services.pools import pool_activity, register_pool
from sabha.platform.services.queue import (
    LeaseLost,
    PoolNotActive,
    ResultRejected,
    create_job,
    expire_leases,
    finalize_job,
    heartbeat_lease,
    lease_next_shard,
    submit_shard_results,
)
from sabha.platform.services.verification import VerificationPolicy, quarantine_pool
from sabha.platform.wire import GenerationRequest, GenerationResult, ShardLease, ShardResult

pytestmark = pytest.mark.postgresql


def _result(lease: ShardLease, answer: str = "Jibu", **fields: object) -> ShardResult:
    return ShardResult(
        run_id=lease.run_id,
        token=lease.token,
        results=[
            GenerationResult(item_id=r.item_id, prompt=r.text, text=answer, **fields)  # type: ignore[arg-type]
            for r in lease.requests
        ],
        executed_on=H100,
    )


def _honest_result(lease: ShardLease) -> ShardResult:
    return ShardResult(
        run_id=lease.run_id,
        token=lease.token,
        results=[
            GenerationResult(item_id=r.item_id, prompt=r.text, text=honest(r))
            for r in lease.requests
        ],
        executed_on=H100,
    )


def _scored(db: Engine, job_id: int) -> bool:
    with Session(db) as session:
        return bool(session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).all())


def _finish(db: Engine, job_id: int, pools: dict[int, Answer], policy: VerificationPolicy) -> None:
    """Work and finalize until the job is scored (audits re-open shards a few times)."""
    for _ in range(5):
        _work(db, pools, policy)
        if finalize_job(db, job_id, policy):
            return
    raise AssertionError(f"job {job_id} was not finished after five rounds")


def _status(db: Engine, pool_id: int) -> str:
    with Session(db) as session:
        return session.get_one(Pool, pool_id).status


def test_a_new_pool_that_rushes_gets_nothing_counted_and_only_its_quota_waiting(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 1: results still waiting for a replica counted towards the new-pool quota."""
    job_id = _benchmark_and_job(db, tmp_path, n_items=16)  # 8 shards
    rusher = _volunteer(db, "rusher")
    policy = VerificationPolicy(new_pool_shards=3, fraction=0.0)
    statuses = []
    while (status := _answer(db, rusher, forged, policy)) is not None:
        statuses.append(status)
    # Three results wait for replicas; then it is leased nothing more until some are verified.
    assert statuses == [RunStatus.SUBMITTED] * 3
    assert not finalize_job(db, job_id, policy) and not _scored(db, job_id)
    with Session(db) as session:
        assert session.exec(select(Shard.accepted_run_id)).all() == [None] * 8
        assert session.get_one(Pool, rusher).agreements == 0


def test_a_pool_that_turns_to_forging_after_earning_trust_is_caught_before_any_score(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 2: after its quota of honest shards, a sleeper's forgeries were accepted."""
    expected = _trusted_scores(db, tmp_path)  # 8 items, 4 shards of 2
    policy = VerificationPolicy(new_pool_shards=2, fraction=0.0)  # no sampling: only the audit
    earn = _benchmark_and_job(db, tmp_path, model="earn")
    sleeper, alice, bob = (_volunteer(db, n) for n in ("sleeper", "alice", "bob"))
    _work(db, {sleeper: honest, alice: honest}, policy)  # they replicate each other
    with Session(db) as session:
        assert session.get_one(Pool, sleeper).agreements >= 2  # proven
    _finish(db, earn, {sleeper: honest, alice: honest, bob: honest}, policy)
    job_id = _benchmark_and_job(db, tmp_path, model="forged")
    statuses = []
    while (status := _answer(db, sleeper, forged, policy)) is not None:
        statuses.append(status)
    assert statuses == [RunStatus.ACCEPTED] * 4  # it counts at once now...
    assert not finalize_job(db, job_id, policy)  # ...but one of its shards is audited first
    assert not _scored(db, job_id)
    _work(db, {alice: honest, bob: honest}, policy)  # a replica, a disagreement, a third run
    assert _status(db, sleeper) == PoolStatus.QUARANTINED
    assert not _scored(db, job_id)  # its shards are recomputed by others
    _finish(db, job_id, {alice: honest, bob: honest}, policy)
    assert _overall(db, job_id) == expected
    with Session(db) as session:
        counted = session.exec(
            select(Output.text)
            .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
            .where(Shard.job_id == job_id)
        ).all()
        assert counted and forged(GenerationRequest(item_id=0, text="")) not in counted
        assert {_status(db, p) for p in (alice, bob)} == {PoolStatus.ACTIVE}


def test_a_quarantined_pool_can_neither_post_nor_heartbeat_and_nothing_is_stored(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 3: a quarantined pool's result to a lease it held was accepted."""
    job_id = _benchmark_and_job(db, tmp_path, n_items=2)
    mallory = _volunteer(db, "mallory")
    policy = VerificationPolicy(new_pool_shards=0, fraction=0.0, audit_jobs=False)
    lease = lease_next_shard(db, mallory, policy=policy)
    assert lease is not None
    with session_scope(db) as session:
        quarantine_pool(session, session.get_one(Pool, mallory), "caught elsewhere")
    with pytest.raises(PoolNotActive, match="caught elsewhere"):
        submit_shard_results(db, _result(lease), policy)
    with pytest.raises(PoolNotActive):
        heartbeat_lease(db, lease.run_id, lease.token)
    with pytest.raises(PoolNotActive):
        lease_next_shard(db, mallory, policy=policy)
    with Session(db) as session:
        assert session.exec(select(Output)).all() == []
        assert session.exec(select(Shard.accepted_run_id)).all() == [None]
    assert not finalize_job(db, job_id, policy)


def test_results_posted_after_an_outage_longer_than_the_lease_complete_the_job(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 4: after a long outage two owners' late results deadlocked the job."""
    job_id = _benchmark_and_job(db, tmp_path, n_items=4)  # 2 shards
    alice, bob = _volunteer(db, "alice"), _volunteer(db, "bob")
    policy = VerificationPolicy(new_pool_shards=1000)
    first = {p: lease_next_shard(db, p, lease_seconds=5, policy=policy) for p in (alice, bob)}
    assert {lease.shard_index for lease in first.values() if lease} == {0, 1}
    expire_leases(db, now=utcnow() + timedelta(minutes=10))  # the platform was down
    # Back up, each agent leases before its spool is posted: it gets the other's shard.
    second = {p: lease_next_shard(db, p, policy=policy) for p in (bob, alice)}
    for pool in (alice, bob):
        lease, again = first[pool], second[pool]
        assert lease is not None and again is not None
        assert again.shard_index != lease.shard_index
    for leases in (first, second):  # the spooled (late) results, then the new ones
        for lease in leases.values():
            assert lease is not None
            submit_shard_results(db, _honest_result(lease), policy)
    assert finalize_job(db, job_id, policy) and _scored(db, job_id)
    assert {_status(db, p) for p in (alice, bob)} == {PoolStatus.ACTIVE}


def test_honest_pools_whose_outputs_differ_agree_and_a_disagreement_is_no_verdict(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 5: same-setup outputs were compared byte for byte; a new pool was
    quarantined at its first disagreement."""
    job_id = _benchmark_and_job(db, tmp_path, n_items=4)

    def drifted(request: GenerationRequest) -> str:  # another thread count, same setup keys
        return honest(request).replace("Jibu la swali", "Jibu la swali hili")

    alice, bob, mallory = (_volunteer(db, n) for n in ("alice", "bob", "mallory"))
    policy = VerificationPolicy(new_pool_shards=1000)
    assert _answer(db, alice, honest, policy, info=L4) == RunStatus.SUBMITTED  # shard 0
    assert _answer(db, bob, drifted, policy, info=L4) == RunStatus.SUBMITTED  # verifies it
    assert _answer(db, alice, honest, policy, info=L4) == RunStatus.SUBMITTED  # shard 1
    assert _answer(db, mallory, forged, policy, info=L4) == RunStatus.SUBMITTED  # meets alice
    # alice and bob agreed on shard 0 though their texts differ; on shard 1 alice and
    # mallory disagree: no verdict until a third owner's run decides it.
    assert _pools(db) == {
        "alice": (PoolStatus.ACTIVE, 1),
        "bob": (PoolStatus.ACTIVE, 1),
        "mallory": (PoolStatus.ACTIVE, 0),
    }
    assert _answer(db, bob, drifted, policy, info=L4) == RunStatus.SUBMITTED
    assert finalize_job(db, job_id, policy)
    assert _pools(db) == {
        "alice": (PoolStatus.ACTIVE, 2),
        "bob": (PoolStatus.ACTIVE, 2),
        "mallory": (PoolStatus.QUARANTINED, 0),
    }


def _pools(db: Engine) -> dict[str, tuple[str, int]]:
    with Session(db) as session:
        pools = session.exec(select(Pool).where(Pool.kind == PoolKind.REMOTE)).all()
        return {p.name: (p.status, p.agreements) for p in pools}


def test_self_reported_figures_are_bounded_and_credit_only_verified_runs(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 6: tokens and engine time were taken as reported; credit counted
    withdrawn and disagreeing runs; a huge token count answered 500."""
    with pytest.raises(ValidationError, match="num_tokens"):
        GenerationResult(item_id=1, num_tokens=2**70)
    job_id = _benchmark_and_job(db, tmp_path, n_items=4)  # max_tokens 8
    pools = {name: _volunteer(db, f"{name}-gpu", name) for name in ("alice", "bob", "mallory")}
    with Session(db) as session:
        owners = {n: session.get_one(Pool, p).owner_id or 0 for n, p in pools.items()}
    policy = VerificationPolicy(new_pool_shards=1000)
    lease = lease_next_shard(db, pools["mallory"], policy=policy)
    assert lease is not None
    refused = r"more new tokens than the job allows .*\(at most 8\)"
    with pytest.raises(ResultRejected, match=refused):
        submit_shard_results(db, _result(lease, num_tokens=9), policy)
    boasted = _result(lease, num_tokens=8).model_copy(update={"engine_seconds": 30 * 86_400.0})
    submit_shard_results(db, boasted, policy)  # a forgery, claiming a month of engine time
    with Session(db) as session:
        run = session.get_one(ShardRun, lease.run_id)
        assert run.engine_seconds is not None and run.engine_seconds < 60  # the lease's length
    _work(db, {pools["alice"]: honest, pools["bob"]: honest}, policy)
    assert _status(db, pools["mallory"]) == PoolStatus.QUARANTINED
    assert finalize_job(db, job_id, policy)
    with Session(db) as session:
        (mallory,) = pool_activity(session, owners["mallory"])
        (alice,) = pool_activity(session, owners["alice"])
    assert mallory.total_runs == 1 and mallory.items == 0 and mallory.output_tokens == 0
    assert mallory.engine_seconds == 0.0 and mallory.lease_seconds == 0.0
    assert alice.items > 0


def test_a_pools_claimed_memory_counts_only_once_it_is_proven_and_is_capped(db: Engine) -> None:
    """Finding 6: a pool's own report of its memory decided which big models were accepted."""
    liar = register_pool(db, "liar", PoolKind.REMOTE, {"memory_bytes": 10**15})
    with Session(db) as session:
        assert known_pool_sizes(session, None, proven_after=20) == []
    with session_scope(db) as session:
        session.get_one(Pool, liar).agreements = 20
    with Session(db) as session:
        assert known_pool_sizes(session, None, proven_after=20) == [
            PoolSize("liar", MAX_ENGINE_BYTES)
        ]


def test_a_job_of_a_model_on_the_platforms_disk_is_never_leased_to_a_volunteer(
    db: Engine, tmp_path: Path
) -> None:
    """Finding 7: volunteers were leased jobs whose model is a folder on the platform."""
    _benchmark_and_job(db, tmp_path, n_items=2)
    with session_scope(db) as session:
        benchmark = session.exec(select(Benchmark)).one()
        model = Model(name="on-disk", source="local", path=str(tmp_path / "model"))
        session.add(model)
        session.flush()
        job, _ = create_job(session, model, benchmark, 1)  # two shards
        on_disk = id_of(job)
    volunteer = _volunteer(db, "alice")
    policy = VerificationPolicy(new_pool_shards=1000)
    lease = lease_next_shard(db, volunteer, policy=policy)
    assert lease is not None and lease.job_id != on_disk and lease.model.source == "hub"
    assert lease_next_shard(db, volunteer, policy=policy) is None
    shared = lease_next_shard(db, volunteer, policy=policy, local_models_for_volunteers=True)
    assert shared is not None and shared.job_id == on_disk  # one machine: the disk is shared
    operator = register_pool(db, "local")
    mine = lease_next_shard(db, operator, policy=policy)
    assert mine is not None and mine.job_id == on_disk
    with Session(db) as session:
        assert session.get_one(Job, on_disk).status == "running"


def test_a_lease_lost_to_quarantine_is_refused_and_its_token_stays_dead(
    db: Engine, tmp_path: Path
) -> None:
    _benchmark_and_job(db, tmp_path, n_items=2)
    mallory = _volunteer(db, "mallory")
    lease = lease_next_shard(db, mallory, policy=VerificationPolicy(new_pool_shards=0))
    assert lease is not None
    with pytest.raises(LeaseLost):
        heartbeat_lease(db, lease.run_id, "not-the-token")
