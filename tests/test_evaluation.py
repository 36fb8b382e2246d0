"""The local pool through the queue: shards saved as they finish, resumes, per-item errors.

The engine here is scripted: these tests are about Sabha's own bookkeeping
around it. The real vLLM path is tested in test_inference.py.
"""

from __future__ import annotations

import _thread
import time
from pathlib import Path

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Job,
    JobStatus,
    Output,
    RunStatus,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
)
from sabha.platform.errors import EngineError
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job


def _job(db: Engine, tmp_path: Path, n_items: int = 10, shard_size: int | None = None) -> int:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(n_items)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "scripted", repo_id="org/scripted", revision="c" * 40)
        job, _ = create_job(session, model, benchmark, shard_size)
        assert job.id is not None
        return job.id


def test_shards_are_saved_as_accepted_runs_and_scored(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, shard_size=4)
    engine = ScriptedEngine()
    progress: list[int] = []
    run_with(db, [job_id], engine, progress=progress.append)
    assert [len(s) for s in engine.shards] == [4, 4, 2]
    assert progress == [4, 4, 2]
    assert engine.closed
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
        shards = session.exec(select(Shard)).all()
        assert all(s.status == ShardStatus.COMPLETED and s.accepted_run_id for s in shards)
        runs = session.exec(select(ShardRun)).all()
        assert {r.status for r in runs} == {RunStatus.ACCEPTED}
        assert all(r.executed_on and r.executed_on["host"] == "test-host" for r in runs)
        assert len(session.exec(select(Output)).all()) == 10
        scoring = session.exec(select(ScoringRun)).one()
        assert scoring.pools == ["test-pool"] and scoring.items == 10
        scores = session.exec(select(Score)).all()
        keys = {(s.metric, s.breakdown, s.group) for s in scores}
        assert ("chrf++", "overall", "all") in keys
        assert ("chrf++", "language", "hi-Deva") in keys and ("bleu", "language", "sw-Latn") in keys


def test_crash_releases_leases_and_resume_keeps_finished_shards(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, shard_size=3)
    crashing = ScriptedEngine(fail_after_shards=2)
    with pytest.raises(EngineError, match="simulated engine crash") as caught:
        run_with(db, [job_id], crashing)
    assert "resume" in str(caught.value)
    done_before = {i for shard in crashing.shards for i in shard}
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.FAILED
        assert "simulated engine crash" in (job.error or "")
        assert session.exec(select(ShardRun).where(ShardRun.status == RunStatus.LEASED)).all() == []
        released = session.exec(select(ShardRun).where(ShardRun.status == RunStatus.RELEASED))
        assert len(released.all()) >= 1
        assert {s.status for s in session.exec(select(Shard))} <= {
            ShardStatus.COMPLETED,
            ShardStatus.QUEUED,
        }
        saved = set(session.exec(select(Output.item_id)).all())
        assert saved == done_before and len(saved) == 6
        assert session.exec(select(Score)).all() == []

    from sabha.platform.services.evaluate import plan_evaluation

    plan_evaluation(db, ["scripted"], ["tiny-gen"])  # queues the failed job again
    resumed = ScriptedEngine()
    run_with(db, [job_id], resumed)
    redone = {i for shard in resumed.shards for i in shard}
    assert redone.isdisjoint(done_before) and len(redone) == 4
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
        counted = session.exec(
            select(Output).join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
        ).all()
        assert len(counted) == 10


def test_per_item_errors_are_scored_as_wrong_and_not_retried(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, n_items=6)
    with Session(db) as session:
        first_item = session.exec(select(Shard)).one().item_ids[0]
    engine = ScriptedEngine(
        answer=lambda r: r.text.split("Question:")[-1],
        errors={first_item: "prompt too long: 3,000 tokens; this model's context is 2,048"},
    )
    run_with(db, [job_id], engine)
    with Session(db) as session:
        scoring = session.exec(select(ScoringRun)).one()
        assert scoring.failed_items == 1
        assert scoring.failure_reasons == {"prompt too long": 1}
        failed = session.exec(select(Output).where(Output.item_id == first_item)).one()
        assert failed.error and failed.error.startswith("prompt too long")
        assert session.get(Job, job_id).status == JobStatus.COMPLETED  # type: ignore[union-attr]
    # A second run has nothing to do: the failed item is recorded, not retried forever.
    again = ScriptedEngine()
    run_with(db, [job_id], again)
    assert again.shards == []


def test_engine_answering_other_items_is_refused_and_stores_nothing(
    db: Engine, tmp_path: Path
) -> None:
    job_id = _job(db, tmp_path, n_items=4)

    class WrongItems(ScriptedEngine):
        def generate_shards(self, work, max_in_flight=256):  # type: ignore[no-untyped-def]
            for key, results in super().generate_shards(work, max_in_flight):
                yield key, results[1:]

    with pytest.raises(EngineError, match="do not answer exactly"):
        run_with(db, [job_id], WrongItems())
    with Session(db) as session:
        assert session.exec(select(Output)).all() == []
        runs = session.exec(select(ShardRun)).all()
        assert [r.status for r in runs] == [RunStatus.RELEASED], [
            r.model_dump(exclude={"token_hash", "error"}) for r in runs
        ]


def test_completed_job_is_found_again_and_not_rerun(db: Engine, tmp_path: Path) -> None:
    from sabha.platform.services.evaluate import plan_evaluation

    job_id = _job(db, tmp_path, n_items=2)
    plan = plan_evaluation(db, ["scripted"], ["tiny-gen"])
    assert plan[0].jobs == [("tiny-gen", job_id)] and plan[0].done == []
    run_with(db, [job_id], ScriptedEngine())
    plan = plan_evaluation(db, ["scripted"], ["tiny-gen"])
    assert plan[0].jobs == [] and plan[0].done == [("tiny-gen", job_id)]
    with Session(db) as session:
        assert len(session.exec(select(Job)).all()) == 1


def test_keyboard_interrupt_leaves_no_job_running(db: Engine, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path, shard_size=3)

    class Interrupted(ScriptedEngine):
        def generate_shards(self, work, max_in_flight=256):  # type: ignore[no-untyped-def]
            iterator = iter(work)
            taken = 0
            while taken < 2:  # two shards leased, then the user presses Ctrl-C
                taken += next(iterator) is not None
            _thread.interrupt_main()  # Ctrl-C reaches the main thread, as a signal does
            for _ in iterator:  # the agent ends the work when it stops
                time.sleep(0.01)
            yield from ()

    with pytest.raises(KeyboardInterrupt):
        run_with(db, [job_id], Interrupted())
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.QUEUED and job.error is None
        runs = session.exec(select(ShardRun)).all()
        assert len(runs) == 2 and {r.status for r in runs} == {RunStatus.RELEASED}
        assert {s.status for s in session.exec(select(Shard))} == {ShardStatus.QUEUED}


def test_classification_with_devanagari_labels_reads_the_answers(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    labels = ["सुरक्षित", "असुरक्षित"]
    items = [
        {
            "id": f"s-{i}",
            "language": "hi-Deva",
            "split": "test",
            "input": {"prompt": f"अनुरोध {i}"},
            "label": labels[i % 2],
        }
        for i in range(8)
    ]
    path = write_benchmark(
        tmp_path / "bench",
        items,
        task="classification",
        labels=labels,
        metrics=["accuracy", "macro_f1"],
        primary_metric="macro_f1",
        prompt={"template": "{prompt}\nउत्तर:"},
        languages=["hi-Deva"],
    )
    gold = {f"अनुरोध {i}": labels[i % 2] for i in range(8)}
    with session_scope(sqlite_db) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), tmp_path / "a")
        model = add_model(session, "scripted", repo_id="org/scripted", revision="c" * 40)
        job_id = create_job(session, model, benchmark)[0].id
    # Answers in the labels' own script, with a full stop (U+0964) and a trailing line.
    engine = ScriptedEngine(answer=lambda r: f"{gold[r.text.splitlines()[0]]}।\nकारण: ...")
    run_with(sqlite_db, [job_id], engine)  # type: ignore[list-item]
    with Session(sqlite_db) as session:
        scores = {(s.metric, s.breakdown): s.value for s in session.exec(select(Score))}
    assert scores[("accuracy", "overall")] == 100.0
    assert scores[("unparseable", "overall")] == 0.0


def test_a_failing_platform_call_stops_the_evaluation_and_leaves_no_job_running(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sabha.platform.services import local_pool

    job_id = _job(db, tmp_path, shard_size=3)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(local_pool, "submit_shard_results", broken)
    with pytest.raises(EngineError, match="the database went away") as caught:
        run_with(db, [job_id], ScriptedEngine())
    assert "resume" in str(caught.value)
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.FAILED
        assert "the database went away" in (job.error or "")
        assert session.exec(select(ShardRun).where(ShardRun.status == RunStatus.LEASED)).all() == []
        assert session.exec(select(Output)).all() == []
