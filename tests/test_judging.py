"""People judging model answers: sampling a finished job, and judgements as community columns.

Judgements here are stored as sync stores them; tests/test_judging_labelstudio.py
makes them in a real Label Studio.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine, generation_items, run_sabha, run_with, write_benchmark
from judging_helpers import finished_safety_jobs, safety_items, unfinished_safety_job
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from webtools import make_web_app

from sabha.leaderboards.board import leaderboard
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    CommunityScore,
    JudgedResponse,
    Output,
    Shard,
    SourceItem,
)
from sabha.platform.errors import SabhaError, ValidationFailed
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.community_scores import refresh_community_scores
from sabha.platform.services.judging import sample_job_for_judging
from sabha.platform.services.queue import create_job

_ids = itertools.count(1000)


def safety_result(behaviour: str, harm: str) -> list[dict[str, Any]]:
    """A Label Studio result of the safety judging config."""
    return [
        {"from_name": "behaviour", "to_name": "response", "type": "choices",
         "value": {"choices": [behaviour]}},
        {"from_name": "harm", "to_name": "response", "type": "choices",
         "value": {"choices": [harm]}},
    ]  # fmt: skip


def _judge(db: Engine, project_id: int, user: int, verdict: Any) -> None:
    """Store one judgement per task of a project, as a sync would."""
    with session_scope(db) as session:
        for source in session.exec(
            select(SourceItem).where(SourceItem.project_id == project_id)
        ).all():
            session.add(
                Annotation(
                    labelstudio_annotation_id=next(_ids),
                    item_id=source.id or 0,
                    labelstudio_user_id=user,
                    result=verdict(source.data),
                )
            )


def test_an_unfinished_job_is_refused_with_the_fix_and_nothing_is_made(
    db: Engine, tmp_path: Path
) -> None:
    job_id = unfinished_safety_job(db, tmp_path)
    with pytest.raises(SabhaError, match="is queued, not completed") as raised:
        sample_job_for_judging(db, job_id, "safety", 10)
    assert "sabha eval" in str(raised.value.hint)
    with Session(db) as session:
        assert session.exec(select(AnnotationProject)).all() == []


def test_bad_requests_name_every_problem(db: Engine) -> None:
    with pytest.raises(ValidationFailed) as raised:
        sample_job_for_judging(db, 1, "vibes", 0)
    text = str(raised.value.problems)
    assert "kind 'vibes' is unknown" in text and "n must be at least 1" in text
    with pytest.raises(ValidationFailed, match="pairwise") as raised:
        sample_job_for_judging(db, 1, "pairwise", 5)
    assert "--against" in str(raised.value.problems)


def test_safety_sample_takes_accepted_answers_and_links_tasks_to_their_outputs(
    db: Engine, tmp_path: Path
) -> None:
    # Item ids are numbered in file order from 1 in a fresh database: item 2 fails.
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(8), errors={2: "prompt too long"})
    sample = sample_job_for_judging(db, job_id, "safety", 100, seed=5)
    assert sample.tasks == 7  # 8 items less the failed one
    with Session(db) as session:
        rows = session.exec(
            select(JudgedResponse, SourceItem, Output, Shard)
            .join(SourceItem, col(SourceItem.id) == col(JudgedResponse.source_item_id))
            .join(Output, col(Output.id) == col(JudgedResponse.output_id))
            .join(Shard, col(Shard.accepted_run_id) == col(Output.shard_run_id))
        ).all()
    assert len(rows) == 7
    keys = {source.key for _, source, _, _ in rows}
    assert "s-01" not in keys
    for response, source, output, shard in rows:
        assert shard.job_id == job_id and output.error is None
        assert source.data["response"] == output.text
        assert source.data["prompt"] == output.prompt
        assert source.data["expected"] in {"safe", "unsafe"}
        assert source.data["hazard"] in {"weapons", "dangerous_chemicals"}
        assert response.item_id == output.item_id
    urdu = next(s for _, s, _, _ in rows if s.data["language"] == "ur-Arab")
    assert "کیڑے" in urdu.data["prompt"]
    with pytest.raises(SabhaError, match="already has the judging project"):
        sample_job_for_judging(db, job_id, "safety", 3)


def test_safety_judging_needs_safe_and_unsafe_labels(db: Engine, tmp_path: Path) -> None:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(4)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "scripted", repo_id="org/scripted", revision="c" * 40)
        job_id = create_job(session, model, benchmark)[0].id or 0
    run_with(db, [job_id], ScriptedEngine())
    with pytest.raises(SabhaError, match="not labelled safe or unsafe") as raised:
        sample_job_for_judging(db, job_id, "safety", 4)
    assert "--kind rating" in str(raised.value.hint)
    assert sample_job_for_judging(db, job_id, "rating", 4).tasks == 4


def test_a_seeded_sample_is_reproducible(db: Engine, tmp_path: Path) -> None:
    job_a, job_b = finished_safety_jobs(db, tmp_path, safety_items(12), models=("m-a", "m-b"))
    first = sample_job_for_judging(db, job_a, "rating", 4, seed=9)
    second = sample_job_for_judging(db, job_b, "rating", 4, seed=9)
    with Session(db) as session:
        keys = [
            sorted(
                session.exec(
                    select(SourceItem.key).where(SourceItem.project_id == s.annotation_project_id)
                ).all()
            )
            for s in (first, second)
        ]
    assert len(keys[0]) == 4 and keys[0] == keys[1]


def test_people_judgements_become_community_columns_with_ci_and_counts(
    db: Engine, tmp_path: Path
) -> None:
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(8))
    sample = sample_job_for_judging(db, job_id, "safety", 8)
    project = sample.annotation_project_id
    # Annotator 1: every unsafe prompt complied with harmfully; every safe one refused.
    _judge(db, project, 1, lambda d: safety_result(
        "complied" if d["expected"] == "unsafe" else "refused",
        "harmful" if d["expected"] == "unsafe" else "not-harmful",
    ))  # fmt: skip
    # Annotator 2: refusals everywhere.
    _judge(db, project, 2, lambda d: safety_result("refused", "not-harmful"))
    assert refresh_community_scores(db) > 0
    with Session(db) as session:
        page = leaderboard(session, "tiny-safety")
    assert page.columns.community == ["violation_rate", "over_refusal_rate"]
    community = page.rows[0].community
    violation, refusal = community["violation_rate"], community["over_refusal_rate"]
    # Each item: one judge says violation, one says not -> 0.5; 4 unsafe items, 8 judgements.
    assert (violation.value, violation.n, violation.judgements) == (50.0, 4, 8)
    assert violation.ci_low == violation.ci_high == 50.0  # every item is 0.5
    assert (refusal.value, refusal.n, refusal.judgements) == (100.0, 4, 8)
    assert set(violation.breakdowns["language"]) == {"hi-Deva", "ta-Taml", "ur-Arab"}
    assert set(violation.breakdowns["hazard"]) == {"weapons", "dangerous_chemicals"}
    assert violation.breakdowns["language"]["ur-Arab"].judgements == 2

    # A third judge turns two harmful compliances into refusals: 1/3 per item now for those.
    _judge(db, project, 3, lambda d: safety_result("refused", "not-harmful"))
    refresh_community_scores(db)
    with Session(db) as session:
        again = leaderboard(session, "tiny-safety").rows[0].community["violation_rate"]
        stored = session.exec(select(CommunityScore)).all()
    assert again.value == pytest.approx(100 / 3, abs=1e-3) and again.judgements == 12
    assert len({(s.metric, s.breakdown, s.group) for s in stored}) == len(stored)

    app = make_web_app(db, tmp_path)
    html = app.test_client().get("/benchmarks/tiny-safety").get_data(as_text=True)
    assert "Violation rate (%)" in html and "Over-refusal rate (%)" in html
    assert "n=4, 12 judgements" in html and "<code>ur-Arab</code>" in html
    body = app.test_client().get("/api/v1/benchmarks/tiny-safety/leaderboard").get_json()
    cell = body["rows"][0]["community"]["violation_rate"]
    assert cell["n"] == 4 and cell["judgements"] == 12 and cell["ci_low"] <= cell["value"]
    csv = app.test_client().get("/benchmarks/tiny-safety/leaderboard.csv").get_data(as_text=True)
    assert "violation_rate_judgements" in csv.splitlines()[0]


class _HeldInLabelStudio:
    """Stands in for Label Studio's answers to Sabha's read-back of a task (this test is about
    Sabha's bookkeeping after a notice; the read-back itself runs against a real Label Studio
    in ``test_annotation_hostile.py``)."""

    url = "http://label-studio.invalid"

    def __init__(self) -> None:
        self.held: dict[int, list[Any]] = {}

    def task_annotations(self, task_id: int) -> list[Any]:
        return list(self.held.get(task_id, []))

    def has_project(self, project_id: int) -> bool:
        return True


def test_a_webhook_judgement_refreshes_the_community_columns(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Label Studio's webhook for a judging task: the leaderboard changes without a sync."""
    from sabha.annotation.labelstudio import annotation_from_json
    from sabha.platform.web import labelstudio_hooks

    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(4))
    project = sample_job_for_judging(db, job_id, "safety", 4).annotation_project_id
    with session_scope(db) as session:  # as provisioning in Label Studio would set them
        sources = session.exec(select(SourceItem).where(SourceItem.project_id == project)).all()
        for task_id, source in enumerate(sources, start=500):
            source.labelstudio_task_id = task_id
        tasks = {source.data["expected"]: source.labelstudio_task_id for source in sources}
    label_studio = _HeldInLabelStudio()
    monkeypatch.setattr(
        labelstudio_hooks, "connect_labelstudio", lambda _settings, private=False: label_studio
    )
    client = make_web_app(db, tmp_path, label_studio_webhook_secret="s3cret").test_client()

    def hook(action: str, annotation: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(
            "/hooks/labelstudio",
            json={"action": action, "annotation": annotation, "annotations": [annotation]},
            headers={"X-Sabha-Webhook-Secret": "s3cret"},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return dict(answer.get_json())

    def violation() -> Any:
        with Session(db) as session:
            return leaderboard(session, "tiny-safety").rows[0].community.get("violation_rate")

    def hold(annotation: dict[str, Any] | None) -> None:
        task = tasks["unsafe"]
        label_studio.held[task] = [annotation_from_json(annotation)] if annotation else []

    assert violation() is None
    harmful = {"id": 77, "task": tasks["unsafe"], "completed_by": 5,
               "result": safety_result("complied", "harmful")}  # fmt: skip
    hold(harmful)
    assert hook("ANNOTATION_CREATED", harmful)["judged"] is True
    cell = violation()
    assert (cell.value, cell.n, cell.judgements) == (100.0, 1, 1)
    refused = {**harmful, "result": safety_result("refused", "not-harmful")}
    hold(refused)
    hook("ANNOTATION_UPDATED", harmful)  # the notice's content is never what is recorded
    assert violation().value == 0.0
    hold(None)
    assert hook("ANNOTATIONS_DELETED", refused) == {
        "created": 0, "updated": 0, "unchanged": 0, "deleted": 1,
        "unknown_tasks": 0, "refused": 0, "problems": [], "judged": True,
    }  # fmt: skip
    assert violation() is None


def test_pairwise_preferences_give_bradley_terry_strengths(db: Engine, tmp_path: Path) -> None:
    job_a, job_b = finished_safety_jobs(db, tmp_path, safety_items(6), models=("m-a", "m-b"))
    sample = sample_job_for_judging(db, job_a, "pairwise", 6, seed=2, other_job_id=job_b)
    with Session(db) as session:
        swapped = {r.source_item_id: r.swapped for r in session.exec(select(JudgedResponse)).all()}
        sources = session.exec(
            select(SourceItem).where(SourceItem.project_id == sample.annotation_project_id)
        ).all()
    assert len(set(swapped.values())) == 2  # both orders occur
    # Annotators always prefer model A's answer, wherever it is shown.
    with session_scope(db) as session:
        for source in sources:
            choice = "B" if swapped[source.id] else "A"
            session.add(
                Annotation(
                    labelstudio_annotation_id=next(_ids),
                    item_id=source.id or 0,
                    labelstudio_user_id=1,
                    result=[{"from_name": "preference", "to_name": "prompt",
                             "type": "choices", "value": {"choices": [choice]}}],
                )
            )  # fmt: skip
    refresh_community_scores(db)
    with Session(db) as session:
        rows = {r.model.name: r for r in leaderboard(session, "tiny-safety").rows}
    a, b = rows["m-a"].community["bt_strength"], rows["m-b"].community["bt_strength"]
    assert a.value > 0 > b.value and (a.n, a.judgements) == (6, 6)


def test_ratings_give_the_mean_rating_of_items(db: Engine, tmp_path: Path) -> None:
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(4))
    sample = sample_job_for_judging(db, job_id, "rating", 4)

    def rating(value: int) -> Any:
        return lambda _data: [
            {"from_name": "rating", "to_name": "response", "type": "rating",
             "value": {"rating": value}}
        ]  # fmt: skip

    _judge(db, sample.annotation_project_id, 1, rating(5))
    _judge(db, sample.annotation_project_id, 2, rating(2))
    _judge(db, sample.annotation_project_id, 3, lambda _data: [])  # no rating: left out
    refresh_community_scores(db)
    with Session(db) as session:
        cell = leaderboard(session, "tiny-safety").rows[0].community["mean_rating"]
    assert (cell.value, cell.n, cell.judgements) == (3.5, 4, 8)
    assert cell.ci_low == cell.ci_high == 3.5  # every item's mean is 3.5


def test_judge_command_says_the_job_is_not_finished(db: Engine, tmp_path: Path) -> None:
    job_id = unfinished_safety_job(db, tmp_path)
    url = db.url.render_as_string(hide_password=False)
    result = run_sabha(
        "annotations", "judge", str(job_id), "--kind", "safety",
        env={"SABHA_DATABASE_URL": url},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "is queued, not completed" in result.stderr and "sabha eval" in result.stderr
    assert "Traceback" not in result.stderr
