"""Acceptance: a finished job's safety responses judged by two annotators in a real Label Studio.

The job runs through the queue with a scripted engine (its answers are not
what is tested); sampling, Label Studio, the annotators' judgements, sync
and the leaderboard's JSON are all real.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_sabha
from judging_helpers import finished_safety_jobs, safety_items
from labelstudio_fixture import PEOPLE, LabelStudioForTests
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from test_judging import safety_result
from webtools import make_web_app

from sabha.platform.domain import AnnotationProject, SourceItem
from sabha.platform.services.annotation import next_items_for

pytestmark = pytest.mark.slow


def test_two_annotators_judge_safety_responses_and_the_leaderboard_shows_rates(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(12))
    env = {
        "SABHA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "SABHA_LABEL_STUDIO_URL": labelstudio.url,
        "SABHA_LABEL_STUDIO_TOKEN": labelstudio.admin.token,
    }
    made = run_sabha(
        "annotations", "judge", str(job_id), "--kind", "safety", "-n", "10", "--seed", "4",
        env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    found = re.search(
        r"(judging-safety-job-\d+): 10 tasks in Label Studio project (\d+)", made.stdout
    )
    assert found, made.stdout
    with Session(db) as session:
        project = session.exec(
            select(AnnotationProject).where(AnnotationProject.dataset_name == found[1])
        ).one()
        tasks = {
            s.labelstudio_task_id: s.data
            for s in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))
        }
    assert len(tasks) == 10 and None not in tasks

    # Annotator A finds every answer to an unsafe prompt a harmful compliance and
    # every answer to a safe one a refusal; annotator B agrees on the unsafe ones
    # of Tamil only and sees no refusals.
    def strict(d: dict[str, str]) -> tuple[str, str]:
        if d["expected"] == "unsafe":
            return "complied", "harmful"
        return "refused", "not-harmful"

    def lenient(d: dict[str, str]) -> tuple[str, str]:
        harmful = d["language"] == "ta-Taml" and d["expected"] == "unsafe"
        return "complied", "harmful" if harmful else "not-harmful"

    a, b = labelstudio.client(PEOPLE[0]), labelstudio.client(PEOPLE[1])
    for who, verdict in ((a, strict), (b, lenient)):
        handed = next_items_for(db, project.id or 0, who.whoami(), n=100)
        assert sorted(handed) == sorted(tasks)
        for task_id in handed:
            shown = who._sdk.tasks.get(task_id).data  # what the annotator sees
            assert shown["response"] and shown["prompt"] == tasks[task_id]["prompt"]
            who.create_annotation(task_id, safety_result(*verdict(shown)))

    synced = run_sabha("annotations", "sync", found[1], env=env)
    assert synced.returncode == 0, synced.stderr
    assert "20 new" in synced.stdout and "leaderboards updated" in synced.stdout

    unsafe = [d for d in tasks.values() if d["expected"] == "unsafe"]
    safe = [d for d in tasks.values() if d["expected"] == "safe"]
    tamil = [d for d in unsafe if d["language"] == "ta-Taml"]
    assert tamil and len(tamil) < len(unsafe) and safe  # the sample mixes all cases
    app = make_web_app(db, tmp_path)
    board = app.test_client().get("/api/v1/benchmarks/tiny-safety/leaderboard").get_json()
    community = board["rows"][0]["community"]
    violation, refusal = community["violation_rate"], community["over_refusal_rate"]
    # Per unsafe item: 1 where both said harmful (Tamil), else 0.5.
    expected = 100 * (len(tamil) + 0.5 * (len(unsafe) - len(tamil))) / len(unsafe)
    assert violation["value"] == pytest.approx(expected, abs=1e-3)
    assert (violation["n"], violation["judgements"]) == (len(unsafe), 2 * len(unsafe))
    assert violation["ci_low"] <= violation["value"] <= violation["ci_high"]
    assert violation["ci_low"] < violation["ci_high"]
    assert violation["breakdowns"]["language"]["ta-Taml"]["value"] == 100.0
    assert set(violation["breakdowns"]["hazard"]) <= {"weapons", "dangerous_chemicals"}
    # Per safe item: A says refused, B not -> 0.5 each.
    assert refusal["value"] == 50.0 and refusal["n"] == len(safe)
    assert board["columns"]["community"] == ["violation_rate", "over_refusal_rate"]
    html = app.test_client().get("/benchmarks/tiny-safety").get_data(as_text=True)
    assert f"n={len(unsafe)}, {2 * len(unsafe)} judgements" in html
