"""Identities mean what they say: wording changes nothing, versions are explicit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.benchmarks._identity import generation_identity, scoring_identity
from sabha.platform.catalog import add_model, get_benchmark
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Job,
    LeaderboardEntry,
    Model,
    Output,
    Score,
    ScoringRun,
)
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.wire import DecodingOverrides

pytestmark = pytest.mark.postgresql

GENERATION_PINNED = "3340c0f2b077bb96e5fc8437974fda397d6ef84b91dc5fdb0d5af50889f733f6"
SCORING_PINNED = "500bede2d95328a6f1cf658a655940b45b9ce48e6060f187d1f540f7a18df2b5"


def _load(db: Engine, tmp_path: Path, folder: str, **overrides: Any) -> tuple[Benchmark, str]:
    loaded = load_benchmark_file(
        write_benchmark(tmp_path / folder, generation_items(6), **overrides)
    )
    with session_scope(db) as session:
        return register_benchmark(session, loaded, tmp_path / "artifacts")


def _evaluate(db: Engine, tmp_path: Path) -> int:
    with session_scope(db) as session:
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        job_id = create_job(session, model, get_benchmark(session, "tiny-gen"))[0].id
    run_with(db, [job_id], ScriptedEngine())  # type: ignore[list-item]
    return job_id  # type: ignore[return-value]


def test_identity_functions_are_frozen() -> None:
    # Changing what they hash would orphan every stored job and scoring run.
    assert generation_identity("h", "Q: {q}", None, {"max_tokens": 8}, "auto", 2048) == (
        GENERATION_PINNED
    )
    assert scoring_identity("generation", ["bleu"], [], {}, ["language"]) == SCORING_PINNED


def test_fixing_a_typo_keeps_jobs_scores_and_leaderboard(db: Engine, tmp_path: Path) -> None:
    _load(db, tmp_path, "v1")
    job_id = _evaluate(db, tmp_path)
    benchmark, state = _load(db, tmp_path, "typo", title="Tiny generation (fixed typo)")
    assert state == "updated" and benchmark.version == "1"
    with Session(db) as session:
        assert len(session.exec(select(Benchmark)).all()) == 1
        assert len(session.exec(select(Job)).all()) == 1
        assert len(session.exec(select(ScoringRun)).all()) == 1
        entry = session.exec(select(LeaderboardEntry)).one()
        assert entry.job_id == job_id
        assert get_benchmark(session, "tiny-gen").title == "Tiny generation (fixed typo)"


def test_changed_definition_needs_a_new_version(db: Engine, tmp_path: Path) -> None:
    _load(db, tmp_path, "v1")
    with pytest.raises(ValidationFailed) as caught:
        _load(db, tmp_path, "v1-changed", prompt={"template": "Swali: {question}\nJibu:"})
    assert "field 'version'" in str(caught.value) and "version: '2'" in str(caught.value)
    with pytest.raises(ValidationFailed, match="Write version: '1'"):
        _load(db, tmp_path, "v1-renumbered", version="7")
    with Session(db) as session:
        assert len(session.exec(select(Benchmark)).all()) == 1


def test_rescoring_reuses_outputs_and_keeps_the_earlier_scoring(db: Engine, tmp_path: Path) -> None:
    _load(db, tmp_path, "v1")
    job_id = _evaluate(db, tmp_path)
    with Session(db) as session:
        outputs_before = len(session.exec(select(Output)).all())
        first_scores = {s.id: s.value for s in session.exec(select(Score))}
    benchmark, state = _load(db, tmp_path, "v2", version="2", metrics=["chrf++", "bleu", "ter"])
    assert state == "loaded"
    with Session(db) as session:
        assert len(session.exec(select(Output)).all()) == outputs_before  # nothing regenerated
        runs = session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).all()
        assert len(runs) == 2
        assert {s.id: s.value for s in session.exec(select(Score)) if s.id in first_scores} == (
            first_scores
        )
        new_run = next(r for r in runs if r.scoring_hash == benchmark.scoring_hash)
        metrics = set(
            session.exec(select(Score.metric).where(Score.scoring_run_id == new_run.id)).all()
        )
        assert metrics == {"chrf++", "bleu", "ter"}
        entry = session.exec(
            select(LeaderboardEntry).where(LeaderboardEntry.benchmark_id == benchmark.id)
        ).one()
        assert entry.scoring_run_id == new_run.id


def test_going_back_to_an_earlier_definition(db: Engine, tmp_path: Path) -> None:
    first, _ = _load(db, tmp_path, "v1")
    _evaluate(db, tmp_path)
    second, _ = _load(db, tmp_path, "v2", version="2", prompt={"template": "Swali: {question}"})
    with Session(db) as session:
        assert get_benchmark(session, "tiny-gen").id == second.id
        assert (
            session.exec(
                select(LeaderboardEntry).where(LeaderboardEntry.benchmark_id == second.id)
            ).all()
            == []
        )  # a new generation identity: no outputs yet
    again, state = _load(db, tmp_path, "v1-again")
    assert state == "current again" and again.id == first.id
    with Session(db) as session:
        current = session.exec(select(Benchmark).where(col(Benchmark.is_current).is_(True)))
        assert [b.id for b in current] == [first.id]
        assert len(session.exec(select(Job)).all()) == 1
        assert session.exec(
            select(LeaderboardEntry).where(LeaderboardEntry.benchmark_id == first.id)
        ).one()


def _starter_job(
    session: Session, benchmark: Benchmark, overrides: dict[str, Any] | None
) -> tuple[str, str]:
    """A job of a hub model (no tokenizer: budgets counted in bytes) on ``benchmark``."""
    model = get_model_or_add(session)
    given = None if overrides is None else DecodingOverrides(**overrides)
    job, _ = create_job(session, model, benchmark, overrides=given)
    session.flush()
    session.refresh(job)  # as stored
    return job.generation_hash, json.dumps(job.decoding)


def get_model_or_add(session: Session) -> Model:
    found = session.exec(select(Model)).first()
    return found or add_model(session, "m", repo_id="org/m", revision="a" * 40)


# The stored decoding (its keys in their order) and generation identity of a job on each
# starter benchmark, with and without a submission's overrides: existing databases
# find their jobs by these, so the same inputs must give the same bytes.
STARTER_JOBS = {
    ("indic-safety", None): (
        "6e390cdaac8a7d053d05cab9ae3e9169ddcf88550ff1a00e8ba620c5dccf2f75",
        '{"max_tokens": 4, "temperature": 0.0, "seed": 0}',
    ),
    ("indic-safety", "warm"): (
        "10e77f864962272d00b37f21d75179d6aa3e5856c7edd2234b0adbd29459dd88",
        '{"max_tokens": 3, "temperature": 0.7, "seed": 0, "top_p": 0.9}',
    ),
    ("kisan-advisory", None): (
        "72c4758c187c3469e3ba474f3bcdf22f0ec4d8f13c798b3635c4db9754c58d04",
        '{"max_tokens": 1024, "temperature": 0.0, "seed": 0, "max_tokens_by_language": '
        '{"hi-Deva": 1024, "sw-Latn": 387, "ta-Taml": 1024}}',
    ),
    ("kisan-advisory", "warm"): (
        "2f1a6d9dfbef27f25c4426092d9d4110df47144593cbd66322059b9eb34aaf99",
        '{"max_tokens": 512, "temperature": 0.7, "seed": 0, "top_p": 0.9, '
        '"max_tokens_by_language": {"hi-Deva": 512, "sw-Latn": 387, "ta-Taml": 512}}',
    ),
}
WARM = {
    "indic-safety": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 3},
    "kisan-advisory": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512},
}


def test_starter_jobs_keep_their_decoding_and_generation_identity(
    db: Engine, tmp_path: Path
) -> None:
    found = {}
    with session_scope(db) as session:
        for path in starter_benchmark_paths():
            benchmark, _ = register_benchmark(session, load_benchmark_file(path), tmp_path / "a")
            for variant in (None, "warm"):
                found[(benchmark.name, variant)] = _starter_job(
                    session, benchmark, WARM[benchmark.name] if variant else None
                )
    assert found == STARTER_JOBS
