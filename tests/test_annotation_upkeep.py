"""Keeping annotation projects right between releases.

A wrong split is fixed and a bad item withdrawn (so neither blocks a release
forever), reconciliation runs on a schedule, and judging projects get a
webhook. The Label Studio parts run against a real Label Studio.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import REPO, run_sabha
from labelstudio_fixture import PEOPLE, LabelStudioForTests, free_port
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.configs import LabelingOptions
from sabha.annotation.gates import ReleaseGates
from sabha.annotation.labelstudio import LabelStudioAnnotation
from sabha.annotation.sync import upsert_annotation
from sabha.platform.cli import cli
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, AnnotationProject, SourceItem, WithdrawnItem
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.annotation import (
    create_annotation_project,
    provision_project,
    release_annotated_dataset,
    sync_project,
    upload_source_items,
)

NOW = datetime(2026, 12, 6, tzinfo=UTC)
GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=0.5, min_acceptance=None)
LABELS = ["safe", "unsafe", "safe", "unsafe"]


def _label(safety: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "hazard", "type": "choices", "value": {"choices": ["fire"]}},
        {"from_name": "safety", "type": "choices", "value": {"choices": [safety]}},
    ]


def _rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _annotated_project(db: Engine, tmp_path: Path, dataset: str) -> int:
    """A label project whose four items LS users 11 and 12 labelled alike (no Label Studio)."""
    project = create_annotation_project(
        db, dataset, "sw-Latn", "label", options=LabelingOptions(hazards=("fire",))
    )
    rows = [{"id": f"i{n}", "text": f"Moto shambani {n}"} for n in range(len(LABELS))]
    upload_source_items(db, project.id or 0, _rows(tmp_path / "items.jsonl", rows))
    with session_scope(db) as session:
        items = session.exec(select(SourceItem).where(SourceItem.project_id == project.id)).all()
        for n, item in enumerate(sorted(items, key=lambda i: i.key)):
            item.labelstudio_task_id = 5000 + n
            session.add(item)
        session.flush()
        for n, label in enumerate(LABELS):
            for user in (11, 12):
                upsert_annotation(
                    session,
                    LabelStudioAnnotation(
                        50000 + 10 * n + user, 5000 + n, user, _label(label), False, NOW, NOW
                    ),
                )
    return project.id or 0


def _set_split_as_an_older_upload_did(db: Engine, project_id: int, key: str, split: str) -> None:
    with session_scope(db) as session:
        item = session.exec(
            select(SourceItem).where(SourceItem.project_id == project_id, SourceItem.key == key)
        ).one()
        item.split = split
        session.add(item)


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("SABHA_DATABASE_URL", url)
    monkeypatch.setenv("SABHA_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_a_wrong_split_is_fixed_by_a_maintainer_and_no_longer_blocks_the_release(
    db: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = _annotated_project(db, tmp_path, "moto")
    _set_split_as_an_older_upload_did(db, project_id, "i1", "tset")
    with pytest.raises(ValidationFailed) as blocked:
        release_annotated_dataset(db, "moto", tmp_path / "artifacts", gates=GATES)
    assert "field 'split': 'tset'" in " ".join(blocked.value.problems)

    runner = _cli(monkeypatch, migrated_url, tmp_path)
    bad = runner.invoke(
        cli, ["annotations", "set-split", "moto", "i1", "tets", "--language", "sw-Latn"]
    )
    assert bad.exit_code == 1 and "split 'tets' is unknown; use one of test, dev" in bad.output
    missing = runner.invoke(
        cli, ["annotations", "set-split", "moto", "i9", "dev", "--language", "sw-Latn"]
    )
    assert missing.exit_code == 1 and "has no item 'i9'" in missing.output
    # Into the private split: no, every annotator can read a community project's items.
    leaked = runner.invoke(
        cli, ["annotations", "set-split", "moto", "i1", "private", "--language", "sw-Latn"]
    )
    assert leaked.exit_code == 1 and "cannot be held out" in leaked.output
    fixed = runner.invoke(
        cli, ["annotations", "set-split", "moto", "i1", "dev", "--language", "sw-Latn"]
    )
    assert fixed.exit_code == 0, fixed.output
    assert "item i1: split tset -> dev" in fixed.output

    released = release_annotated_dataset(db, "moto", tmp_path / "artifacts", gates=GATES)
    assert released.created and released.public_items == 4


def test_a_withdrawn_item_leaves_the_next_release_and_keeps_a_record(
    db: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = _annotated_project(db, tmp_path, "moto")
    _set_split_as_an_older_upload_did(db, project_id, "i3", "train")
    with session_scope(db) as session:  # never opened in Label Studio: no server needed
        item = session.exec(select(SourceItem).where(SourceItem.key == "i3")).one()
        item.labelstudio_task_id = None
        session.add(item)
    runner = _cli(monkeypatch, migrated_url, tmp_path)
    no_reason = runner.invoke(
        cli, ["annotations", "withdraw", "moto", "i3", "--language", "sw-Latn", "--reason", " "]
    )
    assert no_reason.exit_code == 1 and "reason: say why" in no_reason.output
    withdrawn = runner.invoke(
        cli,
        ["annotations", "withdraw", "moto", "i3", "--language", "sw-Latn"]
        + ["--reason", "a duplicate of i1 with a split nobody uses"],
    )
    assert withdrawn.exit_code == 0, withdrawn.output
    assert "with 2 annotation(s)" in withdrawn.output
    with Session(db) as session:
        assert session.exec(select(SourceItem).where(SourceItem.key == "i3")).first() is None
        assert len(session.exec(select(Annotation)).all()) == 6
        record = session.exec(select(WithdrawnItem)).one()
    assert (record.project_id, record.key, record.split) == (project_id, "i3", "train")
    assert record.reason.startswith("a duplicate") and record.annotations == 2
    assert record.data == {"text": "Moto shambani 3"}

    released = release_annotated_dataset(db, "moto", tmp_path / "artifacts", gates=GATES)
    assert released.created and released.public_items == 3


def test_an_upload_refuses_a_split_no_release_accepts(db: Engine, tmp_path: Path) -> None:
    project = create_annotation_project(db, "kisan", "hi-Deva", "qa")
    rows = [{"id": "q1", "question": "धान कब बोएं?", "split": "tset"}]
    with pytest.raises(ValidationFailed) as refused:
        upload_source_items(db, project.id or 0, _rows(tmp_path / "q.jsonl", rows))
    assert "line 1: field 'split' is 'tset'; use one of test, dev, private" in " ".join(
        refused.value.problems
    )
    with Session(db) as session:
        assert session.exec(select(SourceItem)).all() == []


# -- against a real Label Studio ----------------------------------------------------------


def _answer(text: str) -> list[dict[str, Any]]:
    return [
        {
            "from_name": "answer",
            "to_name": "question",
            "type": "textarea",
            "value": {"text": [text]},
        }
    ]


def _qa_project(db: Engine, tmp_path: Path, ls: LabelStudioForTests, n: int = 2) -> int:
    dataset = f"kisan-{uuid.uuid4().hex[:8]}"
    project = create_annotation_project(db, dataset, "hi-Deva", "qa", annotations_per_item=1)
    rows = [{"id": f"q{i}", "question": f"धान कब बोएं? {i}"} for i in range(n)]
    upload_source_items(db, project.id or 0, _rows(tmp_path / "q.jsonl", rows))
    provision_project(db, ls.client(), project.id or 0)  # no webhook: only sync brings news
    return project.id or 0


def _tasks(db: Engine, project_id: int) -> dict[str, int]:
    with Session(db) as session:
        return {
            s.key: s.labelstudio_task_id or 0
            for s in session.exec(select(SourceItem).where(SourceItem.project_id == project_id))
        }


@pytest.mark.slow
def test_withdrawing_an_item_deletes_its_task_so_no_sync_brings_it_back(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    from sabha.platform.services.annotation import withdraw_item

    project_id = _qa_project(db, tmp_path, labelstudio)
    tasks = _tasks(db, project_id)
    annotator = labelstudio.client(PEOPLE[0])
    annotator.create_annotation(tasks["q0"], _answer("जून में"))
    annotator.create_annotation(tasks["q1"], _answer("बारिश के बाद"))
    assert sync_project(db, labelstudio.client(), project_id).created == 2
    with Session(db) as session:
        dataset = session.get(AnnotationProject, project_id).dataset_name  # type: ignore[union-attr]

    record = withdraw_item(db, labelstudio.client(), dataset, "hi-Deva", "q0", "मूल प्रश्न दोहराया")
    assert record.annotations == 1
    assert tasks["q0"] not in labelstudio.client().task_ids(
        _ls_project(db, project_id)
    )  # gone from Label Studio with its annotation
    again = sync_project(db, labelstudio.client(), project_id)
    assert (again.created, again.deleted) == (0, 0)
    with Session(db) as session:
        left = session.exec(select(Annotation)).all()
    assert [a.item_id for a in left] and len(left) == 1
    # Withdrawing again: the item is gone.
    with pytest.raises(Exception, match="has no item 'q0'"):
        withdraw_item(db, labelstudio.client(), dataset, "hi-Deva", "q0", "again")


def _ls_project(db: Engine, project_id: int) -> int:
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        assert project is not None and project.labelstudio_project_id is not None
        return project.labelstudio_project_id


def _sabha_annotations(db: Engine) -> set[int]:
    with Session(db) as session:
        return set(session.exec(select(Annotation.labelstudio_annotation_id)).all())


def _wait_until(check: Any, what: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if check():
            return
        assert process.poll() is None, f"the sync loop exited: {log.read_text()}"
        time.sleep(0.5)
    pytest.fail(f"{what} within 60 s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_scheduled_sync_heals_missed_webhooks_until_sigterm(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    project_id = _qa_project(db, tmp_path, labelstudio)
    tasks = _tasks(db, project_id)
    log = tmp_path / "sync.log"
    env = {
        **os.environ,
        "SABHA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "SABHA_LABEL_STUDIO_URL": labelstudio.url,
        "SABHA_LABEL_STUDIO_TOKEN": labelstudio.admin.token,
    }
    with log.open("w") as out:
        loop = subprocess.Popen(
            [sys.executable, "-m", "sabha.platform.cli", "annotations", "sync", "--every", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
    try:
        # No webhook reaches Sabha: the loop finds the annotation, then its deletion.
        made = labelstudio.client(PEOPLE[1]).create_annotation(tasks["q1"], _answer("जून में"))
        _wait_until(lambda: made.id in _sabha_annotations(db), "no sync", loop, log)
        labelstudio.client(PEOPLE[1]).delete_annotation(made.id)
        _wait_until(lambda: made.id not in _sabha_annotations(db), "no deletion", loop, log)
    finally:
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=30)
    said = log.read_text()
    assert loop.returncode == 0 and "Stopped." in said and "Traceback" not in said
    assert "1 new" in said and "1 deleted" in said


def test_scheduled_sync_carries_on_while_label_studio_is_down(tmp_path: Path, db: Engine) -> None:
    with session_scope(db) as session:
        session.add(
            AnnotationProject(
                dataset_name="kisan",
                language="hi-Deva",
                task_type="qa",
                title="kisan (hi-Deva)",
                options={},
                labelstudio_project_id=3,
            )
        )
    log = tmp_path / "sync.log"
    env = {
        **os.environ,
        "SABHA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "SABHA_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "SABHA_LABEL_STUDIO_TOKEN": "t0ken-x",
    }
    with log.open("w") as out:
        loop = subprocess.Popen(
            [sys.executable, "-m", "sabha.platform.cli", "annotations", "sync", "--every", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
    deadline = time.monotonic() + 60
    while log.read_text().count("not synced") < 2 and time.monotonic() < deadline:
        assert loop.poll() is None, log.read_text()
        time.sleep(0.5)
    loop.send_signal(signal.SIGTERM)
    loop.wait(timeout=30)
    said = log.read_text()
    assert said.count("kisan (hi-Deva): not synced: Label Studio at") >= 2, said
    assert loop.returncode == 0 and "Traceback" not in said


@pytest.mark.slow
def test_a_judging_project_gets_a_webhook(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    from judging_helpers import finished_safety_jobs, safety_items

    (job_id,) = finished_safety_jobs(db, tmp_path, safety_items(4))
    env = {
        "SABHA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "SABHA_LABEL_STUDIO_URL": labelstudio.url,
        "SABHA_LABEL_STUDIO_TOKEN": labelstudio.admin.token,
        "SABHA_LABEL_STUDIO_WEBHOOK_SECRET": "s3cret-for-the-judging-hook",
        "SABHA_PUBLIC_URL": "http://127.0.0.1:5000",
    }
    made = run_sabha("annotations", "judge", str(job_id), "--kind", "safety", "-n", "3", env=env)
    assert made.returncode == 0, made.stderr
    assert "Label Studio calls http://127.0.0.1:5000/hooks/labelstudio" in made.stdout
    with Session(db) as session:
        project = session.exec(
            select(AnnotationProject).where(AnnotationProject.dataset_name.startswith("judging-"))  # type: ignore[attr-defined]
        ).one()
    assert project.labelstudio_project_id is not None
    hooks = labelstudio.client().webhooks(project.labelstudio_project_id)
    assert hooks == ["http://127.0.0.1:5000/hooks/labelstudio"]
    answer = httpx.get(
        f"{labelstudio.url}/api/webhooks/",
        params={"project": project.labelstudio_project_id},
        headers={"Authorization": f"Token {labelstudio.admin.token}"},
    ).json()
    assert {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"} <= set(answer[0]["actions"])
