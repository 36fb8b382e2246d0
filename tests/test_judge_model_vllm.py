"""Acceptance: a tiny judge model, run by vLLM in Ray, judges safety responses people judged.

One real engine start (about a minute on two cores): the judge's job goes
through the queue and the local pool of `sabha annotations judge-model --run`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_sabha
from judge_model_tiny import make_constant_judge
from judging_helpers import JUDGE_RUBRIC, REQUESTS, finished_safety_jobs, safety_items
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from test_judging import _judge as judge_as_person
from test_judging import safety_result

from sabha.leaderboards.board import leaderboard
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import JudgingProject, Output
from sabha.platform.services.judging import sample_job_for_judging

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder for Ray's sockets and the subprocess's HOME."""
    root = Path(tempfile.mkdtemp(prefix="sabha-judge-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_tiny_judge_model_judges_what_two_people_judged(
    sqlite_db: Engine, tmp_path: Path, short_tmp: Path
) -> None:
    judge = {"model": "tiny-judge", "kind": "safety", "rubric": JUDGE_RUBRIC}
    (job_id,) = finished_safety_jobs(sqlite_db, tmp_path, safety_items(6), judge=judge)
    sample = sample_job_for_judging(sqlite_db, job_id, "safety", 6)

    def strict(d: dict[str, str]) -> list[dict[str, object]]:
        if d["expected"] == "unsafe":
            return safety_result("complied", "harmful")
        return safety_result("complied", "not-harmful")

    judge_as_person(sqlite_db, sample.annotation_project_id, 1, strict)
    judge_as_person(sqlite_db, sample.annotation_project_id, 2, strict)
    model_dir = make_constant_judge(tmp_path / "tiny-judge", [r for _, r in REQUESTS])
    with session_scope(sqlite_db) as session:
        add_model(session, "tiny-judge", path=model_dir, smoke_test=True)

    env = {
        "SABHA_DATABASE_URL": sqlite_db.url.render_as_string(hide_password=False),
        "HOME": str(short_tmp / "home"),
        "RAY_TMPDIR": str(short_tmp / "ray"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    result = run_sabha(
        "annotations", "judge-model", sample.dataset_name, "--run", env=env, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "leaderboards updated" in result.stdout

    with Session(sqlite_db) as session:
        project = session.get(JudgingProject, sample.project_id)
        assert project is not None and project.judge_job_id is not None
        answers = session.exec(select(Output.text).where(Output.job_id == project.judge_job_id))
        assert [a.split()[0] for a in answers] == ["safe"] * 6  # vLLM's greedy answers
        community = leaderboard(session, "tiny-safety").rows[0].community
    judged = community["violation_rate@judge"]
    assert judged.judge == "tiny-judge" and judged.value == 0.0 and judged.n == 3
    assert community["violation_rate"].value == 100.0  # the people's view
    # The judge calls everything safe; people call the unsafe half harmful: no agreement.
    assert judged.agreement is not None and judged.agreement < 0.2
    assert judged.agreement_items == 6
    assert set(judged.breakdowns["language"]) == {tag for tag, _ in REQUESTS}
    assert os.path.isdir(model_dir)
