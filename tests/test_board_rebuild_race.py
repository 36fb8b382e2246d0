"""Two platform processes finishing two jobs of one benchmark at once both publish: the board's
rebuilds take turns (found by benchmarks/thousand_pools.py: a result post answered 400 with
"duplicate key ... leaderboard_entry" while its job's scores were being published)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import select

from sabha.leaderboards.board import rebuild_leaderboard
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Benchmark, LeaderboardEntry
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

pytestmark = pytest.mark.postgresql


def test_two_rebuilds_of_one_board_at_once_both_succeed(db: Engine, tmp_path: Path) -> None:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(4)))
    jobs = []
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        benchmark_id = benchmark.id
        for name in ("org/a", "org/b"):
            model = add_model(session, name.split("/")[1], repo_id=name, revision="1" * 40)
            jobs.append(create_job(session, model, benchmark, shard_size=2)[0].id)
    run_with(db, jobs, ScriptedEngine())
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def rebuild() -> None:
        try:
            barrier.wait(timeout=10)  # both start together (SQLite: one waits for the other)
            with session_scope(db) as session:
                board = session.get(Benchmark, benchmark_id)
                assert board is not None
                rebuild_leaderboard(session, board)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    for _ in range(10):
        threads = [threading.Thread(target=rebuild) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, failures
    with session_scope(db) as session:
        entries = session.exec(
            select(LeaderboardEntry).where(LeaderboardEntry.benchmark_id == benchmark_id)
        ).all()
        assert sorted(e.model["name"] for e in entries) == ["a", "b"]


def test_a_job_finalized_again_does_not_hold_up_another_jobs_board(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Job B's finalization (again: the sweep, a second pool) holds B's row; job A's board
    rebuild meanwhile writes B's leaderboard row, which points at B. That must not wait for
    B (it did with FOR UPDATE, and the two then deadlocked on the benchmark's lock)."""
    import time

    if db.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: a finalization always waits for the other")
    from sabha.platform.services import scoring
    from sabha.platform.services.queue import finalize_job

    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(4)))
    jobs = []
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        for name in ("org/a", "org/b"):
            model = add_model(session, name.split("/")[1], repo_id=name, revision="1" * 40)
            jobs.append(create_job(session, model, benchmark, shard_size=2)[0].id)
    run_with(db, jobs, ScriptedEngine())  # both scored and on the board
    job_a, job_b = jobs
    real = scoring.score_job_for_current_benchmarks
    b_holds_its_job, a_done = threading.Event(), threading.Event()

    def scoring_that_waits_in_b(session: object, job: object) -> object:
        if getattr(job, "id", None) == job_b:
            b_holds_its_job.set()
            a_done.wait(timeout=5)
        return real(session, job)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "score_job_for_current_benchmarks", scoring_that_waits_in_b)
    failures: list[BaseException] = []
    took: list[float] = []

    def finalize_b() -> None:
        try:
            assert finalize_job(db, job_b)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=finalize_b)
    thread.start()
    assert b_holds_its_job.wait(timeout=10)
    began = time.monotonic()
    try:
        assert finalize_job(db, job_a)
        took.append(time.monotonic() - began)
    finally:
        a_done.set()
        thread.join(timeout=30)
    assert not failures, failures
    assert took and took[0] < 4, f"job A's finalization waited {took} s for job B's"
