"""Reviews and release gates, on Sabha's own records of annotations (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.configs import LabelingOptions
from sabha.annotation.gates import ReleaseGates
from sabha.annotation.labelstudio import LabelStudioAnnotation
from sabha.annotation.sync import upsert_annotation
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, AnnotationReview, SourceItem, User
from sabha.platform.errors import SabhaError, ValidationFailed
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import (
    check_release_gates,
    create_annotation_project,
    link_labelstudio_account,
    require_release_gates,
    upload_source_items,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def review_annotation(
    db: Engine, annotation_id: int, reviewer: User, verdict: str, comment: str = ""
) -> None:
    """Review the version of the annotation Sabha holds now (what a reviewer's page shows)."""
    from sabha.annotation.votes import annotation_version
    from sabha.platform.services.annotation import review_annotation as review

    with Session(db) as session:
        stored = session.exec(
            select(Annotation).where(Annotation.labelstudio_annotation_id == annotation_id)
        ).first()
    version = annotation_version(stored.result) if stored else "0" * 64
    review(db, annotation_id, reviewer, verdict, comment, version=version)


def _label(safety: str) -> list[dict[str, object]]:
    return [
        {"from_name": "hazard", "type": "choices", "value": {"choices": ["fire"]}},
        {"from_name": "safety", "type": "choices", "value": {"choices": [safety]}},
    ]


def _annotated(db: Engine, tmp_path: Path, language: str, a: list[str], b: list[str]) -> None:
    """A project in ``language`` whose items LS users 11 and 12 labelled ``a`` and ``b``."""
    project = create_annotation_project(
        db, "safety", language, "label", options=LabelingOptions(hazards=("fire",))
    )
    path = tmp_path / f"{language}.jsonl"
    path.write_text("".join(json.dumps({"id": f"i{i}", "text": "t"}) + "\n" for i in range(len(a))))
    upload_source_items(db, project.id or 0, path)
    base = 1000 if language == "sw-Latn" else 2000
    with session_scope(db) as session:
        items = session.exec(select(SourceItem).where(SourceItem.project_id == project.id)).all()
        for n, item in enumerate(sorted(items, key=lambda i: i.key)):
            item.labelstudio_task_id = base + n
            session.add(item)
        session.flush()
        for n in range(len(a)):
            for user, labels in ((11, a), (12, b)):
                upsert_annotation(
                    session,
                    LabelStudioAnnotation(
                        base * 10 + n * 100 + user,
                        base + n,
                        user,
                        _label(labels[n]),
                        False,
                        NOW,
                        NOW,
                    ),
                )


def _user(db: Engine, name: str, roles: tuple[str, ...]) -> User:
    with session_scope(db) as session:
        return create_user(session, name, password="a long password 123", roles=roles)


def test_reviews_need_the_role_a_comment_to_reject_and_another_person(
    db: Engine, tmp_path: Path
) -> None:
    _annotated(db, tmp_path, "sw-Latn", ["safe", "unsafe"], ["safe", "unsafe"])
    outsider = _user(db, "outsider", ("annotator",))
    reviewer = _user(db, "reviewer", ("reviewer",))
    author = _user(db, "author", ("reviewer", "annotator"))
    link_labelstudio_account(db, author.id or 0, 11, "author@example.org")
    with pytest.raises(SabhaError, match="is not a reviewer"):
        review_annotation(db, 10011, outsider, "accepted")
    with pytest.raises(SabhaError, match="cannot review it"):
        review_annotation(db, 10011, author, "accepted")
    with pytest.raises(ValidationFailed, match="Cannot record") as caught:
        review_annotation(db, 10011, reviewer, "rejected", "  ")
    assert "needs a comment" in caught.value.problems[0]
    with pytest.raises(ValidationFailed):
        review_annotation(db, 10011, reviewer, "maybe")
    review_annotation(db, 10011, reviewer, "rejected", "Jibu si sahihi")
    review_annotation(db, 10011, reviewer, "accepted")  # changes the verdict in place
    with Session(db) as session:
        reviews = session.exec(select(AnnotationReview)).all()
    assert [(r.verdict, r.comment) for r in reviews] == [("accepted", "")]


def test_a_failing_gate_blocks_the_release_and_says_which_and_by_how_much(
    db: Engine, tmp_path: Path
) -> None:
    _annotated(db, tmp_path, "sw-Latn", ["safe", "unsafe", "safe"], ["safe", "unsafe", "safe"])
    _annotated(db, tmp_path, "ta-Taml", ["safe", "unsafe", "safe"], ["unsafe", "safe", "safe"])
    reviewer = _user(db, "reviewer", ("reviewer",))
    for annotation_id in (10011, 10012, 10111, 10112, 10211, 10212):
        review_annotation(db, annotation_id, reviewer, "accepted")
    review_annotation(db, 20011, reviewer, "rejected", "wrong label")
    review_annotation(db, 20012, reviewer, "accepted")
    gates = ReleaseGates(min_annotations_per_item=2, min_alpha=0.667, min_acceptance=0.8)
    with pytest.raises(ValidationFailed, match="cannot be released: 2 gate") as caught:
        require_release_gates(db, "safety", gates)
    problems = caught.value.problems
    assert any(
        p.startswith("alpha of safety in ta-Taml is") and "falls short by" in p for p in problems
    )
    assert "reviewer acceptance in ta-Taml is 0.5, required 0.8: falls short by 0.3" in problems
    passed = {(r.gate, r.language) for r in check_release_gates(db, "safety", gates) if r.passed}
    assert ("alpha of safety", "sw-Latn") in passed
    assert ("annotations per item", "ta-Taml") in passed
    # Three annotations per item are required: every language falls short by one.
    more = ReleaseGates(min_annotations_per_item=3, min_alpha=None, min_acceptance=None)
    with pytest.raises(ValidationFailed) as caught:
        require_release_gates(db, "safety", more)
    assert caught.value.problems == [
        "annotations per item in sw-Latn is 2, required 3: falls short by 1",
        "annotations per item in ta-Taml is 2, required 3: falls short by 1",
    ]


def test_the_release_command_prints_the_version_or_each_failed_gate(
    db: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from sabha.platform.cli import cli

    monkeypatch.setenv("SABHA_DATABASE_URL", migrated_url)
    monkeypatch.setenv("SABHA_DATA_DIR", str(tmp_path / "data"))
    _annotated(db, tmp_path, "sw-Latn", ["safe", "unsafe", "safe"], ["safe", "unsafe", "safe"])
    _annotated(db, tmp_path, "ta-Taml", ["safe", "unsafe", "safe"], ["unsafe", "safe", "safe"])
    reviewer = _user(db, "reviewer", ("reviewer",))
    for annotation_id in (10011, 10012, 10111, 10112, 10211, 10212, 20011, 20012):
        review_annotation(db, annotation_id, reviewer, "accepted")
    runner = CliRunner()
    failed = runner.invoke(cli, ["annotations", "release", "safety", "--version-note", "v1"])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "alpha of safety in ta-Taml is" in failed.output and "falls short by" in failed.output
    assert "sw-Latn" not in failed.output  # only the failed gates are listed

    args = ["annotations", "release", "safety", "--min-alpha", "-1", "--private-fraction", "0.3"]
    released = runner.invoke(cli, args)
    assert released.exit_code == 0, released.output
    assert released.output.startswith("released  safety@")
    assert "(2 public items, 2 held out on the server)" in released.output  # hash-chosen
    assert "left out  2 item(s) in ta-Taml: annotators tied or had no majority" in released.output
    again = runner.invoke(cli, args)
    assert again.output.split()[:2] == ["unchanged", released.output.split()[1]]
    bad = runner.invoke(cli, ["annotations", "release", "safety", "--private-fraction", "1"])
    assert bad.exit_code == 1 and "private fraction must be at least 0 and below 1" in bad.output


def test_annotators_and_reviewers_see_their_credit_on_the_account_page(
    db: Engine, tmp_path: Path
) -> None:
    from webtools import make_web_app, sign_in

    _annotated(db, tmp_path, "sw-Latn", ["safe", "unsafe", "safe"], ["safe", "unsafe", "safe"])
    annotator = _user(db, "mwandishi", ("annotator",))
    reviewer = _user(db, "mkaguzi", ("reviewer",))
    link_labelstudio_account(db, annotator.id or 0, 11, "mwandishi@example.org")
    review_annotation(db, 10011, reviewer, "accepted")
    review_annotation(db, 10111, reviewer, "rejected", "wrong label")
    app = make_web_app(db, tmp_path)
    pages = {}
    for name in ("mwandishi", "mkaguzi"):
        client = app.test_client()
        sign_in(client, name, "a long password 123")
        pages[name] = " ".join(client.get("/account").get_data(as_text=True).split())
    assert '<th scope="row">Annotations made</th><td>3</td>' in pages["mwandishi"]
    assert '<th scope="row">Accepted by reviewers</th><td>1</td>' in pages["mwandishi"]
    assert '<th scope="row">Reviews given</th><td>2</td>' in pages["mkaguzi"]
    assert '<th scope="row">Annotations made</th><td>0</td>' in pages["mkaguzi"]
