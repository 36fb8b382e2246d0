"""Batch leasing (``lease_shards``) on SQLite and PostgreSQL: every lease rule, each shard once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import generation_items, in_threads, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Job,
    Model,
    Pool,
    PoolKind,
    Shard,
    ShardRun,
    User,
    id_of,
    utcnow,
)
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import (
    PoolNotActive,
    create_job,
    heartbeat_lease,
    lease_next_shard,
    lease_shards,
    release_lease,
    submit_shard_results,
)
from sabha.platform.services.users import create_user
from sabha.platform.services.verification import VerificationPolicy, quarantine_pool
from sabha.platform.wire import CANNOT_RUN_HERE, EngineInfo, GenerationResult, ShardLease
from sabha.platform.wire import ShardResult as Result

pytestmark = pytest.mark.postgresql

# Every result of a new pool waits for another owner's replica.
REPLICATED = VerificationPolicy(new_pool_shards=20, fraction=0.0, audit_jobs=False)


def _job(db: Engine, tmp_path: Path, items: int, shard_size: int = 1, model: str = "m") -> int:
    path = tmp_path / "bench" / "tiny-gen.yaml"
    if not path.exists():
        write_benchmark(path.parent, generation_items(items))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), tmp_path / "art")
        model_row = add_model(session, model, repo_id=f"org/{model}", revision="a" * 40)
        job, _ = create_job(session, model_row, benchmark, shard_size)
        return id_of(job)


def _volunteer(db: Engine, name: str, owner: str, memory: int = 80 * 10**9) -> int:
    """A volunteer's new pool; ``owner`` is made on first use."""
    with session_scope(db) as session:
        found = session.exec(select(User).where(User.username == owner)).first()
        owner_id = id_of(found) if found else id_of(create_user(session, owner))
    return register_pool(db, name, PoolKind.REMOTE, {"memory_bytes": memory}, owner_id)


def _submit(db: Engine, lease: ShardLease, policy: VerificationPolicy | None = None) -> None:
    submit_shard_results(
        db,
        Result(
            run_id=lease.run_id,
            token=lease.token,
            results=[
                GenerationResult(item_id=r.item_id, prompt=r.text, text="jibu")
                for r in lease.requests
            ],
            executed_on=EngineInfo(host="h"),
        ),
        policy,
    )


def test_a_batch_leases_queued_shards_in_order_each_once(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, items=10)
    pool = register_pool(db, "p")
    first = lease_shards(db, pool, 4)
    assert [lease.shard_index for lease in first] == [0, 1, 2, 3]
    assert {(lease.attempt, lease.replica) for lease in first} == {(1, 0)}
    rest = lease_shards(db, pool, 64)
    assert [lease.shard_index for lease in rest] == [4, 5, 6, 7, 8, 9]
    assert lease_shards(db, pool, 64) == [] and lease_next_shard(db, pool) is None
    for lease in first + rest:  # each token proves its own run only
        heartbeat_lease(db, lease.run_id, lease.token)
    with Session(db) as session:
        runs = session.exec(select(ShardRun)).all()
        assert sorted(r.id for r in runs) == sorted(lease.run_id for lease in first + rest)
        assert session.exec(select(Job)).one().status == "running"
    with pytest.raises(ValueError, match="at least 1"):
        lease_shards(db, pool, 0)


def test_a_batch_numbers_runs_and_sweeps_lapsed_leases(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, items=3)
    pool = register_pool(db, "p")
    a, b, c = lease_shards(db, pool, 3)
    release_lease(db, a.run_id, a.token, "busy")
    with session_scope(db) as session:
        run = session.get(ShardRun, b.run_id)
        assert run is not None
        run.expires_at = utcnow() - timedelta(hours=1)
    again = lease_shards(db, pool, 8)  # the released shard; the lapsed one is not swept yet
    assert [(lease.shard_index, lease.attempt) for lease in again] == [(0, 2)]
    swept = lease_shards(db, pool, 8)  # nothing queued: the lapsed lease is swept back
    assert [(lease.shard_index, lease.attempt) for lease in swept] == [(1, 2)]
    assert heartbeat_lease(db, c.run_id, c.token)


def test_a_batch_keeps_every_lease_rule(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, items=6)
    other_job = _job(db, tmp_path, items=6, model="big")
    with session_scope(db) as session:
        big = session.get_one(Job, other_job)
        big.memory_bytes = 17 * 10**9
    laptop = _volunteer(db, "laptop", "asha", memory=8 * 10**9)
    assert {lease.job_id for lease in lease_shards(db, laptop, 64, policy=REPLICATED)} == {job_id}
    with session_scope(db) as session:  # its leases go back; the memory rule held
        for run in session.exec(select(ShardRun)):
            run.expires_at = utcnow() - timedelta(hours=1)
    # The job filter, and a new pool's cap on results waiting for replicas (3 here).
    capped = VerificationPolicy(new_pool_shards=3, fraction=0.0, audit_jobs=False)
    first = _volunteer(db, "first", "bahati")
    mine = lease_shards(db, first, 64, job_ids=[other_job], policy=capped)
    assert len(mine) == 3 and {lease.job_id for lease in mine} == {other_job}
    for lease in mine:
        _submit(db, lease, capped)
    assert lease_shards(db, first, 64, job_ids=[other_job], policy=capped) == []
    # The owner's other pool never gets a replica of its owner's results; another owner's does.
    twin = _volunteer(db, "twin", "bahati")
    twins = lease_shards(db, twin, 64, job_ids=[other_job], policy=REPLICATED)
    assert not {lease.shard_id for lease in twins} & {lease.shard_id for lease in mine}
    stranger = _volunteer(db, "stranger", "chiku")
    replicas = lease_shards(db, stranger, 64, job_ids=[other_job], policy=REPLICATED)
    assert {lease.shard_id for lease in mine} <= {lease.shard_id for lease in replicas}
    assert {
        lease.replica for lease in replicas if lease.shard_id in {m.shard_id for m in mine}
    } == {1}


def test_a_batch_keeps_local_models_server_only_and_refused_shards_apart(
    db: Engine, tmp_path: Path
) -> None:
    job_id = _job(db, tmp_path, items=4)
    with session_scope(db) as session:
        model = session.exec(select(Model)).one()
        model.source, model.path, model.repo_id, model.revision = "local", str(tmp_path), None, None
        shard = session.exec(select(Shard).where(Shard.index == 0)).one()
        shard.server_only = True
    volunteer = _volunteer(db, "v", "asha")
    assert lease_shards(db, volunteer, 64, policy=REPLICATED) == []  # the model is on our disk
    shared = lease_shards(db, volunteer, 64, policy=REPLICATED, local_models_for_volunteers=True)
    assert [lease.shard_index for lease in shared] == [1, 2, 3]  # never the server-only shard
    refused = shared[0]
    release_lease(db, refused.run_id, refused.token, f"{CANNOT_RUN_HERE} 2 GPUs needed")
    for lease in shared[1:]:
        release_lease(db, lease.run_id, lease.token, "stopping")
    again = lease_shards(db, volunteer, 64, policy=REPLICATED, local_models_for_volunteers=True)
    assert [lease.shard_index for lease in again] == [2, 3]
    local = register_pool(db, "ours")
    assert [lease.shard_index for lease in lease_shards(db, local, 64, [job_id])] == [0, 1]
    with session_scope(db) as session:
        quarantine_pool(session, session.get_one(Pool, volunteer), "forged results")
    with pytest.raises(PoolNotActive):
        lease_shards(db, volunteer, 64, policy=REPLICATED, local_models_for_volunteers=True)


def test_concurrent_batches_from_eight_threads_never_share_a_shard(
    db: Engine, tmp_path: Path
) -> None:
    _job(db, tmp_path, items=240)
    pools = [register_pool(db, f"p{i}") for i in range(8)]
    leased: list[int] = []

    def worker(pool: int) -> None:
        while batch := lease_shards(db, pool, 7):
            leased.extend(lease.shard_id for lease in batch)

    in_threads(worker, pools)
    assert len(leased) == 240 and len(set(leased)) == 240
    with Session(db) as session:
        runs = Counter(r.shard_id for r in session.exec(select(ShardRun)))
        assert set(runs.values()) == {1} and len(runs) == 240
        assert session.exec(select(Shard).where(col(Shard.status) != "leased")).all() == []


def test_long_poll_places_are_half_the_threads_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight agents behind two 8-thread processes all long-poll (2 places each left four of
    them polling every 2 s), while half of each process's threads stay free."""
    from sabha.platform.settings import Settings, lease_waiter_places

    monkeypatch.delenv("SABHA_LEASE_WAITERS", raising=False)
    monkeypatch.delenv("SABHA_THREADS", raising=False)
    assert lease_waiter_places(Settings(data_dir=tmp_path)) == 2
    monkeypatch.setenv("SABHA_THREADS", "8")
    assert lease_waiter_places(Settings(data_dir=tmp_path)) == 4
    monkeypatch.setenv("SABHA_THREADS", "1")
    assert lease_waiter_places(Settings(data_dir=tmp_path)) == 1
    monkeypatch.setenv("SABHA_LEASE_WAITERS", "0")
    assert lease_waiter_places(Settings(data_dir=tmp_path)) == 0


def test_two_new_pools_at_their_limit_still_verify_each_other(db: Engine, tmp_path: Path) -> None:
    """Each new pool has as many results waiting as it may; each waits for the other's
    replica. A capped pool gets no new shard, but a shard waiting for a replica, one a call,
    so the two verify each other instead of waiting for ever (found by test_pool_cheaters)."""
    job_id = _job(db, tmp_path, items=8)
    capped = VerificationPolicy(new_pool_shards=2, fraction=0.0, audit_jobs=False)
    a, b = _volunteer(db, "a", "asha"), _volunteer(db, "b", "bahati")
    a_leases = lease_shards(db, a, 64, policy=capped)
    b_leases = lease_shards(db, b, 64, policy=capped)
    assert len(a_leases) == len(b_leases) == 2
    for lease in a_leases + b_leases:
        _submit(db, lease, capped)
    fresh = {lease.shard_id for lease in a_leases + b_leases}
    # At the limit: only a replica of the other's waiting results, one a call.
    replica = lease_shards(db, b, 64, policy=capped)
    assert len(replica) == 1 and replica[0].shard_id in {x.shard_id for x in a_leases}
    assert replica[0].replica == 1
    _submit(db, replica[0], capped)  # the same answers: they agree, A's result counts
    with session_scope(db) as session:
        shard = session.get_one(Shard, replica[0].shard_id)
        assert shard.accepted_run_id is not None
        queued_fresh = session.exec(
            select(Shard).where(Shard.job_id == job_id, col(Shard.id).not_in(fresh))
        ).all()
        assert all(s.status == "queued" for s in queued_fresh)  # no fresh shard was leased
