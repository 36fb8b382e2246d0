"""The queue's rules, on SQLite and PostgreSQL: leases, deadlines, tokens, idempotent results."""

from __future__ import annotations

import threading
import time
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
    Benchmark,
    Job,
    JobStatus,
    Model,
    Output,
    RunStatus,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
    id_of,
    utcnow,
)
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import (
    LeaseLost,
    ResultRejected,
    create_job,
    expire_leases,
    finalize_job,
    finish_complete_jobs,
    heartbeat_lease,
    lease_next_shard,
    leases,
    release_lease,
    results,
    submit_shard_results,
)
from sabha.platform.wire import EngineInfo, GenerationResult, ShardLease, ShardResult

pytestmark = pytest.mark.postgresql


def _job(db: Engine, tmp_path: Path, n_items: int = 6, shard_size: int = 2) -> int:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(n_items)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        job, _ = create_job(session, model, benchmark, shard_size)
        assert job.id is not None
        return job.id


def _result(lease: ShardLease, text: str = "jibu", token: str | None = None) -> ShardResult:
    return ShardResult(
        run_id=lease.run_id,
        token=token or lease.token,
        results=[
            GenerationResult(item_id=r.item_id, prompt=r.text, text=text) for r in lease.requests
        ],
        executed_on=EngineInfo(host="h"),
    )


def _age(db: Engine, run_id: int, seconds: int = 3600) -> None:
    """Move a lease's deadline into the past."""
    with session_scope(db) as session:
        run = session.get(ShardRun, run_id)
        assert run is not None
        run.expires_at = utcnow() - timedelta(seconds=seconds)


def test_leases_hand_out_each_shard_once_then_none(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path)
    pool = register_pool(db, "p")
    leases = [lease_next_shard(db, pool) for _ in range(4)]
    assert leases[3] is None
    assert sorted(lease.shard_index for lease in leases[:3] if lease) == [0, 1, 2]
    assert all(lease and len(lease.requests) == 2 for lease in leases[:3])
    with Session(db) as session:
        assert {s.status for s in session.exec(select(Shard))} == {ShardStatus.LEASED}
        job = session.exec(select(Job)).one()
        assert job.status == JobStatus.RUNNING


def test_lease_token_is_stored_hashed(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path)
    lease = lease_next_shard(db, register_pool(db, "p"))
    assert lease is not None
    with Session(db) as session:
        run = session.get(ShardRun, lease.run_id)
        assert run is not None and lease.token not in run.token_hash and len(run.token_hash) == 64


def test_expired_lease_returns_shard_to_queue(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=2)
    pool = register_pool(db, "p")
    first = lease_next_shard(db, pool)
    assert first is not None and lease_next_shard(db, pool) is None
    _age(db, first.run_id)
    second = lease_next_shard(db, pool)  # expiry happens on the way
    assert second is not None and second.shard_id == first.shard_id
    assert second.attempt == 2
    with Session(db) as session:
        assert session.get(ShardRun, first.run_id).status == RunStatus.EXPIRED  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        heartbeat_lease(db, first.run_id, first.token)


def test_lapsed_lease_is_swept_back_while_other_shards_are_queued(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep is periodic, not part of every lease; a lapsed lease is dead before it runs."""
    _job(db, tmp_path, n_items=6, shard_size=2)
    pool = register_pool(db, "p")
    first = lease_next_shard(db, pool)
    assert first is not None and first.shard_index == 0
    _age(db, first.run_id)
    # The last sweep was just now: shard 0 waits for the next one, but its lease is dead.
    assert (lease := lease_next_shard(db, pool)) is not None and lease.shard_index == 1
    with pytest.raises(LeaseLost):
        heartbeat_lease(db, first.run_id, first.token)
    monkeypatch.setattr(leases, "LEASE_SWEEP_SECONDS", 0.0)
    again = lease_next_shard(db, pool)
    assert again is not None and again.shard_index == 0 and again.attempt == 2
    assert submit_shard_results(db, _result(again, "new")).status == RunStatus.ACCEPTED
    assert submit_shard_results(db, _result(first, "old")).status == RunStatus.LATE
    with Session(db) as session:
        shard = session.exec(select(Shard).where(Shard.index == 0)).one()
        assert shard.accepted_run_id == again.run_id
        statuses = session.exec(select(ShardRun.status).where(ShardRun.shard_id == shard.id))
        assert sorted(statuses) == sorted([RunStatus.LATE, RunStatus.ACCEPTED])


def test_unswept_lapsed_result_counts_once_when_nobody_took_the_shard(
    db: Engine, tmp_path: Path
) -> None:
    _job(db, tmp_path, n_items=4, shard_size=2)
    pool = register_pool(db, "p")
    lease = lease_next_shard(db, pool)
    assert lease is not None
    _age(db, lease.run_id)  # lapsed, not yet swept
    assert submit_shard_results(db, _result(lease)).status == RunStatus.ACCEPTED
    expire_leases(db)  # the sweep leaves a run that already returned results alone
    with Session(db) as session:
        run = session.get(ShardRun, lease.run_id)
        assert run is not None and run.status == RunStatus.ACCEPTED
    rest = lease_next_shard(db, pool)
    assert rest is not None and rest.shard_id != lease.shard_id
    assert lease_next_shard(db, pool) is None


def test_late_result_is_kept_but_never_counted_twice(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, n_items=2)
    pool = register_pool(db, "p")
    slow = lease_next_shard(db, pool)
    assert slow is not None
    _age(db, slow.run_id)
    fast = lease_next_shard(db, register_pool(db, "q"))
    assert fast is not None
    assert submit_shard_results(db, _result(fast, "fast")).status == RunStatus.ACCEPTED
    late = submit_shard_results(db, _result(slow, "slow"))
    assert late.status == RunStatus.LATE and late.job_complete
    finalize_job(db, job_id)
    with Session(db) as session:
        shard = session.exec(select(Shard)).one()
        assert shard.accepted_run_id == fast.run_id
        assert len(session.exec(select(Output)).all()) == 4  # both kept
        assert session.exec(select(ScoringRun)).one().items == 2  # one counted


def test_late_result_is_accepted_when_nobody_took_the_shard(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=2)
    lease = lease_next_shard(db, register_pool(db, "p"))
    assert lease is not None
    _age(db, lease.run_id)
    expire_leases(db)
    assert submit_shard_results(db, _result(lease)).status == RunStatus.ACCEPTED


def test_submit_is_idempotent(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=2)
    lease = lease_next_shard(db, register_pool(db, "p"))
    assert lease is not None
    first = submit_shard_results(db, _result(lease))
    again = submit_shard_results(db, _result(lease, "different"))
    assert not first.duplicate and again.duplicate and again.status == RunStatus.ACCEPTED
    with Session(db) as session:
        assert [o.text for o in session.exec(select(Output))] == ["jibu", "jibu"]


def test_wrong_token_and_wrong_items_change_nothing(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=4)
    pool = register_pool(db, "p")
    lease, other = lease_next_shard(db, pool), lease_next_shard(db, pool)
    assert lease is not None and other is not None
    with pytest.raises(LeaseLost):
        submit_shard_results(db, _result(lease, token=other.token))
    bad = _result(lease)
    with pytest.raises(ResultRejected, match="do not answer exactly"):
        submit_shard_results(db, bad.model_copy(update={"results": bad.results[:1]}))
    doubled = bad.model_copy(update={"results": [bad.results[0], bad.results[0]]})
    with pytest.raises(ResultRejected, match="repeated"):
        submit_shard_results(db, doubled)
    with Session(db) as session:
        assert session.exec(select(Output)).all() == []
        assert session.get(ShardRun, lease.run_id).status == RunStatus.LEASED  # type: ignore[union-attr]


def test_release_returns_the_shard_at_once(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=2)
    pool = register_pool(db, "p")
    lease = lease_next_shard(db, pool)
    assert lease is not None
    release_lease(db, lease.run_id, lease.token, "stopping")
    again = lease_next_shard(db, pool)
    assert again is not None and again.shard_id == lease.shard_id


def test_heartbeat_extends_the_deadline(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=2)
    lease = lease_next_shard(db, register_pool(db, "p"), lease_seconds=10)
    assert lease is not None
    deadline = heartbeat_lease(db, lease.run_id, lease.token, lease_seconds=600)
    assert deadline > lease.expires_at + timedelta(seconds=500)


def test_no_partial_scores_before_every_shard_is_accepted(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, n_items=4)
    pool = register_pool(db, "p")
    lease = lease_next_shard(db, pool)
    assert lease is not None
    outcome = submit_shard_results(db, _result(lease))
    assert not outcome.job_complete
    assert finalize_job(db, job_id) is False
    with Session(db) as session:
        assert session.exec(select(ScoringRun)).all() == []
        assert session.get(Job, job_id).status != JobStatus.COMPLETED  # type: ignore[union-attr]


def test_concurrent_pools_never_share_a_shard(db: Engine, tmp_path: Path) -> None:
    _job(db, tmp_path, n_items=40, shard_size=1)
    pools = [register_pool(db, f"p{i}") for i in range(4)]
    leased: list[int] = []

    def worker(pool: int) -> None:
        while (lease := lease_next_shard(db, pool)) is not None:
            leased.append(lease.shard_id)
            submit_shard_results(db, _result(lease))

    in_threads(worker, pools)
    assert sorted(leased) == sorted(set(leased)) and len(leased) == 40
    with Session(db) as session:
        accepted = session.exec(select(ShardRun).where(ShardRun.status == RunStatus.ACCEPTED)).all()
        assert len(accepted) == 40
        assert session.exec(select(Shard).where(col(Shard.accepted_run_id).is_(None))).all() == []


def test_two_processes_creating_one_job_get_the_same_job(db: Engine, tmp_path: Path) -> None:
    """The second creator waits for the first and uses its job (no unique-key error)."""
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(4)))
    with session_scope(db) as session:
        register_benchmark(session, loaded, tmp_path / "artifacts")
        add_model(session, "m", repo_id="org/m", revision="a" * 40)
    second: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def create_in_other_session() -> None:
        try:
            with session_scope(db) as other:
                job, created = create_job(
                    other, other.exec(select(Model)).one(), other.exec(select(Benchmark)).one()
                )
                second.append((id_of(job), created))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with session_scope(db) as session:
        job, created = create_job(
            session, session.exec(select(Model)).one(), session.exec(select(Benchmark)).one()
        )
        first = id_of(job)
        thread = threading.Thread(target=create_in_other_session)
        thread.start()
        time.sleep(0.5)  # the other session now waits on our uncommitted job
    thread.join(timeout=60)
    assert errors == [] and created
    assert second == [(first, False)]
    with Session(db) as session:
        assert len(session.exec(select(Job)).all()) == 1


def test_pools_submitting_the_last_two_shards_at_once_see_the_job_complete(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each submission stores its shard before either commits; the later one must still say so.

    Read inside its own transaction, each sees the other's shard open (PostgreSQL,
    READ COMMITTED), and the job would never be scored.
    """
    if db.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: two submissions never overlap there")
    job_id = _job(db, tmp_path, n_items=4)
    pool = register_pool(db, "p")
    leases = [lease_next_shard(db, pool), lease_next_shard(db, pool)]
    both_stored = threading.Barrier(2, timeout=30)
    store = results._store_results

    def store_then_wait(*args: object, **kwargs: object) -> RunStatus:
        status = store(*args, **kwargs)  # type: ignore[arg-type]
        both_stored.wait()  # neither has committed yet
        return status

    monkeypatch.setattr(results, "_store_results", store_then_wait)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def submit(lease: ShardLease | None) -> None:
        assert lease is not None
        try:
            outcomes.append(submit_shard_results(db, _result(lease)).job_complete)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(outcomes) == 2
    assert any(outcomes), "neither submission saw the job complete: it would never be scored"
    assert finalize_job(db, job_id) is True


def test_the_sweep_scores_a_complete_job_that_nobody_finalized(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a platform killed between storing the last shard and scoring the job."""
    job_id = _job(db, tmp_path, n_items=4)
    pool = register_pool(db, "p")
    while (lease := lease_next_shard(db, pool)) is not None:
        submit_shard_results(db, _result(lease))  # stores; scoring is the caller's step
    with Session(db) as session:
        assert session.get(Job, job_id).status == JobStatus.RUNNING  # type: ignore[union-attr]
    monkeypatch.setattr(leases, "LEASE_SWEEP_SECONDS", 0.0)
    assert lease_next_shard(db, pool) is None
    with Session(db) as session:
        assert session.get(Job, job_id).status == JobStatus.COMPLETED  # type: ignore[union-attr]
        assert session.exec(select(ScoringRun)).all() != []
    assert finish_complete_jobs(db) == []  # nothing left to finish
