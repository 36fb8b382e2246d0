"""A judge model: its job goes through the queue; its verdicts are scored next to people's.

The judge's engine is scripted here (its verdicts are the test's input);
sampling, the hidden judging benchmark, the queue, verdict parsing, scores and
agreement are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ScriptedEngine, run_with, write_benchmark
from judging_helpers import JUDGE_RUBRIC, finished_safety_jobs, safety_items
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from test_judging import _judge as judge_as_person
from test_judging import safety_result
from webtools import make_web_app

from sabha.leaderboards.board import benchmark_summaries, leaderboard
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Job, JobStatus, Score, ScoringRun, Shard, ShardRun
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.services.community_scores import refresh_community_scores
from sabha.platform.services.judge_model import (
    create_judge_job,
    judge_agreement,
    parse_rating_verdict,
    parse_safety_verdict,
)
from sabha.platform.services.judging import sample_job_for_judging

JUDGE = {"model": "tiny-judge", "kind": "safety", "rubric": JUDGE_RUBRIC}


def test_verdicts_are_read_from_the_first_verdict_word() -> None:
    assert parse_safety_verdict(" Harmful.\nThe response explains") == ("complied", "harmful")
    assert parse_safety_verdict("refused") == ("refused", "not-harmful")
    assert parse_safety_verdict("unsafe request, but safe answer") == ("complied", "not-harmful")
    assert parse_safety_verdict("not harmful") is None
    assert parse_safety_verdict("\x00\x00") is None
    assert parse_rating_verdict("Rating: 4/5") == 4
    assert parse_rating_verdict("7 out of 10") is None


def test_judge_agreement_compares_with_the_people_majority() -> None:
    people = {"a": ["harmful", "harmful"], "b": ["safe"], "c": ["refused", "safe"], "d": ["safe"]}
    perfect = judge_agreement({"a": "harmful", "b": "safe", "c": "safe", "d": "safe"}, people)
    assert perfect.alpha == pytest.approx(1.0) and perfect.items == 3  # c is a tie: left out
    opposite = judge_agreement({"a": "safe", "b": "harmful", "d": "harmful"}, people)
    assert opposite.alpha is not None and opposite.alpha < 0
    assert judge_agreement({"z": "safe"}, people).items == 0


def test_a_rubric_without_its_placeholders_is_refused(tmp_path: Path) -> None:
    path = write_benchmark(
        tmp_path / "bench",
        safety_items(2),
        task="classification",
        labels=["safe", "unsafe"],
        attributes={"hazard": ["weapons", "dangerous_chemicals"]},
        metrics=["accuracy"],
        primary_metric="accuracy",
        prompt={"template": "{prompt}"},
        languages=["hi-Deva", "ta-Taml"],
        judge={"model": "j", "kind": "safety", "rubric": "Judge {answer}"},
    )
    with pytest.raises(ValidationFailed) as raised:
        load_benchmark_file(path)
    text = str(raised.value.problems)
    assert "judge.rubric" in text and "{prompt}" in text and "{answer}" in text


def test_the_judge_runs_through_the_queue_and_shows_its_agreement_with_people(
    db: Engine, tmp_path: Path
) -> None:
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(12), judge=JUDGE)
    sample = sample_job_for_judging(db, job_id, "safety", 12, seed=1)
    project = sample.annotation_project_id

    def strict(d: dict) -> list:  # type: ignore[type-arg]
        return safety_result(*(("complied", "harmful") if d["expected"] == "unsafe" else
                               ("complied", "not-harmful")))  # fmt: skip

    judge_as_person(db, project, 1, strict)
    judge_as_person(db, project, 2, strict)
    with pytest.raises(NotFoundError, match="tiny-judge.*not registered"):
        create_judge_job(db, sample.project_id)
    with session_scope(db) as session:
        add_model(session, "tiny-judge", repo_id="org/tiny-judge", revision="d" * 40)
    judge_job = create_judge_job(db, sample.project_id)
    assert create_judge_job(db, sample.project_id) == judge_job  # asked again: the same job

    # The judge agrees with people except on Tamil items, where it says every answer is safe.
    unsafe = {f"({i})" for i in range(0, 12, 2)}

    def verdict(request: object) -> str:
        text = str(request.text)  # type: ignore[attr-defined]
        assert text.startswith("Request: ") and "Verdict:" in text
        if "பூச்சிக்கொல்லியை" in text:
            return "safe"
        return "harmful" if any(marker in text for marker in unsafe) else "safe"

    run_with(db, [judge_job], ScriptedEngine(answer=verdict), pool_name="judge-pool")
    with Session(db) as session:
        job = session.get(Job, judge_job)
        assert job is not None and job.status == JobStatus.COMPLETED
        assert session.exec(select(ShardRun).where(ShardRun.job_id == judge_job)).all()
        assert session.exec(select(Shard).where(Shard.job_id == judge_job)).all()
        # The hidden judging benchmark has no metrics and is never listed or ranked.
        runs = session.exec(select(ScoringRun).where(ScoringRun.job_id == judge_job)).all()
        assert all(
            session.exec(select(Score).where(Score.scoring_run_id == r.id)).all() == []
            for r in runs
        )
        assert [b.name for b in benchmark_summaries(session)] == ["tiny-safety"]

    refresh_community_scores(db)
    with Session(db) as session:
        page = leaderboard(session, "tiny-safety")
    assert page.columns.community == [
        "violation_rate",
        "violation_rate@judge",
        "over_refusal_rate",
        "over_refusal_rate@judge",
    ]
    people = page.rows[0].community["violation_rate"]
    judged = page.rows[0].community["violation_rate@judge"]
    assert judged.judge == "tiny-judge" and people.judge == "people"
    assert people.value == 100.0
    # Tamil unsafe items (2 of 6) were called safe by the judge.
    assert judged.value == pytest.approx(100 * 4 / 6) and judged.judgements == 6
    assert judged.agreement is not None and 0 < judged.agreement < 1
    assert judged.agreement_items == 12
    by_language = judged.breakdowns["language"]
    assert by_language["hi-Deva"].agreement == pytest.approx(1.0)
    assert by_language["ta-Taml"].agreement is not None and by_language["ta-Taml"].agreement <= 0
    html = make_web_app(db, tmp_path).test_client().get("/benchmarks/tiny-safety")
    text = html.get_data(as_text=True)
    assert "Violation rate (%), judge model" in text and "judge tiny-judge" in text
    assert f"α={judged.agreement:.2f} on 12 items" in text


def test_a_benchmark_without_a_judge_says_how_to_name_one(db: Engine, tmp_path: Path) -> None:
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(4))
    sample = sample_job_for_judging(db, job_id, "safety", 4)
    with pytest.raises(SabhaError, match="names no judge model") as raised:
        create_judge_job(db, sample.project_id)
    assert "judge:" in str(raised.value.hint)
