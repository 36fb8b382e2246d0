"""Sabha's bookkeeping around the engine: batches are saved, interrupted runs resume.

The engine here is scripted: these tests are about our own error handling.
The real vLLM path is tested in test_inference.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.release import register_benchmark
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Job, JobStatus, Output, Score, Shard, ShardStatus
from sabha.platform.errors import EngineError
from sabha.platform.evaluation import create_job, run_job


def _job(db: Engine, tmp_path: Path, n_items: int = 10) -> int:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(n_items)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "scripted", repo_id="org/scripted", revision="c" * 40)
        job, _ = create_job(session, model, benchmark)
        assert job.id is not None
        return job.id


def test_outputs_are_saved_per_batch_and_scored(
    db: Engine, tmp_path: Path, scripted_engine
) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(db, tmp_path)
    engine = scripted_engine()
    progress: list[int] = []
    job = run_job(db, job_id, engine, batch_size=4, progress=progress.append)
    assert job.status == JobStatus.COMPLETED
    assert [len(b) for b in engine.batches] == [4, 4, 2]
    assert progress == [4, 4, 2]
    with Session(db) as session:
        assert len(session.exec(select(Output)).all()) == 10
        shard = session.exec(select(Shard)).one()
        assert shard.status == ShardStatus.COMPLETED
        assert shard.executed_on == engine.info()
        scores = session.exec(select(Score).where(Score.job_id == job_id)).all()
        keys = {(s.metric, s.breakdown, s.group) for s in scores}
        assert ("chrf++", "overall", "all") in keys
        assert ("chrf++", "language", "hi-Deva") in keys and ("bleu", "language", "sw-Latn") in keys
        assert all(s.ci_low <= s.value <= s.ci_high for s in scores)


def test_interrupted_run_resumes_without_recomputing_finished_items(
    db: Engine,
    tmp_path: Path,
    scripted_engine,  # type: ignore[no-untyped-def]
) -> None:
    job_id = _job(db, tmp_path)
    crashing = scripted_engine(fail_after_batches=2)
    with pytest.raises(EngineError, match="simulated engine crash") as caught:
        run_job(db, job_id, crashing, batch_size=3)
    assert "resume" in str(caught.value)
    done_before = {i for batch in crashing.batches for i in batch}
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.FAILED
        assert "simulated engine crash" in (job.error or "")
        saved = set(session.exec(select(Output.item_id)).all())
        assert saved == done_before and len(saved) == 6
        assert session.exec(select(Score)).all() == []

    resumed = scripted_engine()
    job = run_job(db, job_id, resumed, batch_size=3)
    redone = {i for batch in resumed.batches for i in batch}
    assert job.status == JobStatus.COMPLETED
    assert redone.isdisjoint(done_before) and len(redone) == 4
    with Session(db) as session:
        assert len(session.exec(select(Output)).all()) == 10
        assert session.exec(select(Shard)).one().attempts == 2


def test_engine_answering_other_items_fails_the_job(
    db: Engine, tmp_path: Path, scripted_engine
) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(db, tmp_path, n_items=4)

    class WrongItems(scripted_engine):  # type: ignore[misc, valid-type]
        def generate(self, requests, decoding):  # type: ignore[no-untyped-def]
            results = super().generate(requests, decoding)
            results[0]["item_id"] = -1
            return results

    with pytest.raises(EngineError, match="different set of items"):
        run_job(db, job_id, WrongItems(), batch_size=4)
    with Session(db) as session:
        assert session.exec(select(Output)).all() == []


def test_completed_job_is_not_rerun_by_create_job(
    db: Engine, tmp_path: Path, scripted_engine
) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(db, tmp_path, n_items=2)
    run_job(db, job_id, scripted_engine())
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        from sabha.platform.domain import Benchmark, Model

        again, created = create_job(
            session,
            session.get(Model, job.model_id),
            session.get(Benchmark, job.benchmark_id),  # type: ignore[arg-type]
        )
        assert not created and again.status == JobStatus.COMPLETED


def test_next_batch_is_generating_while_the_previous_is_saved(
    db: Engine,
    tmp_path: Path,
    scripted_engine,  # type: ignore[no-untyped-def]
) -> None:
    job_id = _job(db, tmp_path, n_items=6)
    events: list[str] = []

    class Recording(scripted_engine):  # type: ignore[misc, valid-type]
        def submit(self, requests, decoding):  # type: ignore[no-untyped-def]
            events.append(f"submit {len(events)}")
            return super().submit(requests, decoding)

        def collect(self, handle):  # type: ignore[no-untyped-def]
            events.append("collect")
            return super().collect(handle)

    run_job(db, job_id, Recording(), batch_size=2)
    kinds = [e.split()[0] for e in events]
    assert kinds == ["submit", "submit", "collect", "submit", "collect", "collect"]
