"""A review path for people: the web page, the JSON API and the command line; what blocks a release.

Reviews name the version of the annotation they saw: a later edit voids them.
Annotations are stored as the sync stores what Label Studio holds; the real
Label Studio flow is in ``test_annotation_hostile.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from annotationtools import PASSWORD, annotate, label, label_project, person, version_of
from apitools import PROBLEM, api_settings, bearer
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from werkzeug.serving import make_server

from sabha.annotation.gates import ReleaseGates
from sabha.platform.app import create_app
from sabha.platform.cli import cli
from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationReview, Role, TokenScope
from sabha.platform.errors import PermissionDenied
from sabha.platform.services.accounts import create_access_token
from sabha.platform.services.annotation import (
    ReviewOutdated,
    check_release_gates,
    link_labelstudio_account,
    review_annotation,
    review_queue,
)

GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=None, min_acceptance=0.8)


def _dataset(db: Engine, tmp_path: Path, name: str = "safety") -> dict[str, int]:
    """Items i0, i1 in Swahili, each labelled by Label Studio users 11 (ids 1, 2) and 12 (3, 4)."""
    tasks = label_project(db, tmp_path, name, "sw-Latn", ["i0", "i1"], 500)
    annotate(db, 1, tasks["i0"], 11, label("unsafe"))
    annotate(db, 2, tasks["i1"], 11, label("safe"))
    annotate(db, 3, tasks["i0"], 12, label("unsafe"))
    annotate(db, 4, tasks["i1"], 12, label("safe"))
    return tasks


def _acceptance(db: Engine) -> str:
    (gate,) = [r for r in check_release_gates(db, "safety", GATES) if r.gate.startswith("reviewer")]
    return gate.describe()


@pytest.mark.postgresql
def test_an_edit_after_review_voids_the_review(db: Engine, tmp_path: Path) -> None:
    tasks = _dataset(db, tmp_path)
    reviewer = person(db, "mkaguzi", ("reviewer",))
    seen = version_of(db, 1)
    review_annotation(db, 1, reviewer, "accepted", version=seen)
    assert _acceptance(db) == "reviewer acceptance in sw-Latn is 1, required 0.8: passes"
    with Session(db) as session:
        assert [e.annotation_id for e in review_queue(session, reviewer).annotations] == [3, 2, 4]

    annotate(db, 1, tasks["i0"], 11, label("safe"), minutes=5)  # the annotator edits it
    assert _acceptance(db) == "reviewer acceptance in sw-Latn: cannot be computed yet (needs 0.8)"
    with Session(db) as session:
        (back,) = [e for e in review_queue(session, reviewer).annotations if e.annotation_id == 1]
    assert back.my_review_outdated and back.my_verdict is None and back.answer["safety"] == "safe"
    with pytest.raises(ReviewOutdated, match="changed since you saw it"):
        review_annotation(db, 1, reviewer, "accepted", version=seen)
    review_annotation(db, 1, reviewer, "rejected", "Si salama", version=back.version[:12])
    assert (
        _acceptance(db) == "reviewer acceptance in sw-Latn is 0, required 0.8: falls short by 0.8"
    )
    with Session(db) as session:
        (stored,) = session.exec(select(AnnotationReview)).all()
    assert (stored.verdict, stored.annotation_version) == ("rejected", back.version)


def test_a_replaced_annotation_and_ones_own_cannot_be_reviewed(db: Engine, tmp_path: Path) -> None:
    tasks = _dataset(db, tmp_path)
    annotate(db, 9, tasks["i0"], 11, label("safe"), minutes=3)  # 11 annotates i0 again
    reviewer = person(db, "mkaguzi", ("reviewer", "annotator"))
    link_labelstudio_account(db, reviewer.id or 0, 12, "mkaguzi@example.org")
    with pytest.raises(ReviewOutdated, match="later annotation 9"):
        review_annotation(db, 1, reviewer, "accepted", version=version_of(db, 1))
    with pytest.raises(PermissionDenied, match="cannot review it"):
        review_annotation(db, 3, reviewer, "accepted", version=version_of(db, 3))
    with Session(db) as session:
        listed = [e.annotation_id for e in review_queue(session, reviewer).annotations]
    assert listed == [9, 2]  # neither the replaced one nor the reviewer's own


def _tokens(db: Engine) -> dict[str, str]:
    """Tokens of a reviewer (linked to Label Studio user 12), an annotator and a maintainer."""
    made = {}
    reviewer_id = 0
    for name, roles, scopes in (
        ("mkaguzi", (Role.REVIEWER,), (TokenScope.REVIEW,)),
        ("mwandishi", (Role.ANNOTATOR,), (TokenScope.ANNOTATE,)),
        ("msimamizi", (Role.MAINTAINER,), (TokenScope.MAINTAIN,)),
    ):
        user = person(db, name, tuple(r.value for r in roles))
        reviewer_id = reviewer_id or (user.id or 0)
        with session_scope(db) as session:
            _, made[name] = create_access_token(session, user, "t", scopes, expires_in_days=30)
    link_labelstudio_account(db, reviewer_id, 12, "mkaguzi@example.org")
    return made


def _fields(answer: Any) -> list[str]:
    return [e["field"] for e in answer.json["errors"]]


@pytest.mark.postgresql
def test_reviewers_review_through_the_json_api_with_problem_documents(
    db: Engine, tmp_path: Path
) -> None:
    _dataset(db, tmp_path)
    tokens = _tokens(db)
    client = create_app(api_settings(db, tmp_path, rate_limits=False)).test_client()
    reviewer = bearer(tokens["mkaguzi"])

    listed = client.get("/api/v1/reviews", headers=reviewer)
    assert listed.status_code == 200
    entries = {e["annotation_id"]: e for e in listed.json["annotations"]}
    assert sorted(entries) == [1, 2]  # never the reviewer's own (Label Studio user 12)
    assert entries[1]["answer"] == {"hazard": "fire", "safety": "unsafe"}
    assert entries[1]["shown"] == {"text": "maandishi i0"}
    version = entries[1]["version"]

    url = "/api/v1/annotations/1/review"
    done = client.post(url, headers=reviewer, json={"verdict": "accepted", "version": version})
    assert done.status_code == 201, done.text
    assert (done.json["verdict"], done.json["version"], done.json["reviewer"]) == (
        "accepted",
        version,
        "mkaguzi",
    )
    assert client.get("/api/v1/reviews", headers=reviewer).json["total"] == 1

    def refused(body: dict[str, Any], status: int, path: str = url, **headers: str) -> Any:
        answer = client.post(path, headers=headers or reviewer, json=body)
        assert answer.status_code == status, answer.text
        assert answer.mimetype == PROBLEM and "Traceback" not in answer.text
        return answer

    stale = refused({"verdict": "accepted", "version": "0" * 64}, 409)
    assert stale.json["type"] == "urn:sabha:problem:annotation-changed"
    assert "changed since you saw it" in stale.json["detail"]
    no_comment = refused({"verdict": "rejected", "comment": "  ", "version": version}, 422)
    assert _fields(no_comment) == ["comment"]
    assert _fields(refused({"verdict": "maybe", "version": version}, 422)) == ["body.verdict"]
    assert _fields(refused({"verdict": "accepted"}, 422)) == ["body.version"]
    assert _fields(refused({"verdict": "accepted", "version": "xyz"}, 422)) == ["body.version"]
    refused({"verdict": "accepted", "version": version, "reviewer": "someone"}, 422)
    refused({"verdict": "accepted", "version": version}, 422, f"/api/v1/annotations/{2**70}/review")
    refused({"verdict": "accepted", "version": version}, 422, "/api/v1/annotations/0/review")
    refused({"verdict": "accepted", "version": version}, 404, "/api/v1/annotations/77/review")
    own = refused(
        {"verdict": "accepted", "version": version_of(db, 3)}, 403, "/api/v1/annotations/3/review"
    )
    assert "cannot review it" in own.json["detail"]
    annotator = {"Authorization": f"Bearer {tokens['mwandishi']}"}
    refused({"verdict": "accepted", "version": version}, 403, **annotator)
    assert client.get("/api/v1/reviews", headers=annotator).status_code == 403
    assert client.get("/api/v1/reviews").status_code == 401
    assert client.get("/api/v1/reviews?page=0", headers=reviewer).status_code == 422
    with Session(db) as session:
        assert len(session.exec(select(AnnotationReview)).all()) == 1  # refusals changed nothing


def test_reviewers_accept_and_reject_on_the_review_page(db: Engine, tmp_path: Path) -> None:
    from webtools import csrf_token, make_web_app, sign_in

    tasks = _dataset(db, tmp_path)
    person(db, "mkaguzi", ("reviewer",))
    person(db, "mwandishi", ("annotator",))
    app = make_web_app(db, tmp_path)
    client = app.test_client()
    sign_in(client, "mkaguzi", PASSWORD)
    page = client.get("/review")
    assert page.status_code == 200
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    assert "<script" not in page.text and "style=" not in page.text
    assert 'name="version" value="' + version_of(db, 1) + '"' in page.text
    token = csrf_token(page.text)

    def post(annotation_id: int, **form: str) -> Any:
        return client.post(
            f"/review/annotations/{annotation_id}", data={"csrf_token": token, **form}
        )

    accepted = post(1, verdict="accepted", version=version_of(db, 1))
    assert accepted.status_code == 302
    following = client.get(accepted.headers["Location"])
    assert "Annotation 1: accepted." in following.text
    assert "annotation-1" not in following.text and "annotation-2" in following.text
    shown = version_of(db, 2)
    rejected = post(2, verdict="rejected", comment="  ", version=shown)
    assert rejected.status_code == 400 and "needs a comment" in rejected.text
    annotate(db, 2, tasks["i1"], 11, label("unsafe"), minutes=5)  # edited while the page was open
    stale = post(2, verdict="rejected", comment="Si sahihi", version=shown)
    assert stale.status_code == 409 and "changed since you saw it" in stale.text
    assert post(2, verdict="rejected", comment="x", version=version_of(db, 2)).status_code == 302
    assert post(2**70, verdict="accepted", version=version_of(db, 2)).status_code == 404
    no_csrf = client.post("/review/annotations/3", data={"verdict": "accepted"})
    assert no_csrf.status_code == 400
    with Session(db) as session:
        verdicts = sorted(
            (r.annotation_id, r.verdict) for r in session.exec(select(AnnotationReview)).all()
        )
    assert verdicts == [(1, "accepted"), (2, "rejected")]

    other = app.test_client()
    sign_in(other, "mwandishi", PASSWORD)
    assert other.get("/review").status_code == 403


@pytest.fixture
def served(db: Engine, tmp_path: Path) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1."""
    app = create_app(api_settings(db, tmp_path, rate_limits=False))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_reviewers_review_from_the_command_line(
    db: Engine, tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dataset(db, tmp_path)
    tokens = _tokens(db)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    signed_in = runner.invoke(cli, ["login", "--server", served, "--token", tokens["mkaguzi"]])
    assert signed_in.exit_code == 0, signed_in.output

    listed = runner.invoke(cli, ["annotations", "review", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("2 annotation(s) to review (page 1).")
    short = version_of(db, 1)[:12]
    assert f"annotation 1  version {short}  safety sw-Latn item i0" in listed.output
    assert "answer safety: unsafe" in listed.output

    accepted = runner.invoke(cli, ["annotations", "review", "accept", "1", "--version", short])
    assert (
        accepted.exit_code == 0
        and accepted.output == f"Annotation 1 (version {short}): accepted.\n"
    )
    stale = runner.invoke(
        cli, ["annotations", "review", "reject", "2", "--version", short, "--comment", "x"]
    )
    assert stale.exit_code == 1 and "changed since you saw it" in stale.output
    assert "Traceback" not in stale.output
    empty = runner.invoke(
        cli, ["annotations", "review", "reject", "2", "--version", short, "--comment", " "]
    )
    assert empty.exit_code == 1 and "needs a comment" in empty.output
    assert runner.invoke(cli, ["annotations", "review", "list"]).output.startswith(
        "1 annotation(s) to review"
    )


@pytest.mark.postgresql
def test_a_maintainer_sees_what_blocks_each_release(
    db: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webtools import make_web_app, sign_in

    sw = label_project(db, tmp_path, "blocked", "sw-Latn", ["i0", "i1", "i2"], 600)
    ta = label_project(db, tmp_path, "blocked", "ta-Taml", ["i0", "i1"], 700)
    for n, key in enumerate(["i0", "i1"]):
        annotate(db, 10 + n, sw[key], 11, label("unsafe"))
        annotate(db, 20 + n, sw[key], 12, label("unsafe"))
    annotate(db, 12, sw["i2"], 11, label("safe"))
    annotate(db, 13, sw["i2"], 11, label("safe"), minutes=1)  # one person twice: still one
    for n, (first, second) in enumerate([("safe", "unsafe"), ("unsafe", "safe")]):
        annotate(db, 30 + n, ta[f"i{n}"], 11, label(first))
        annotate(db, 40 + n, ta[f"i{n}"], 12, label(second))
    reviewer = person(db, "mkaguzi", ("reviewer",))
    for annotation_id in (10, 20):
        review_annotation(
            db, annotation_id, reviewer, "accepted", version=version_of(db, annotation_id)
        )
    person(db, "msimamizi", ("maintainer",))

    client = make_web_app(db, tmp_path).test_client()
    sign_in(client, "msimamizi", PASSWORD)
    page = " ".join(client.get("/annotations/datasets").text.split())
    assert (
        'blocked</span> <span class="muted">(label)</span> <span class="badge">blocked</span>'
        in page
    )
    assert "<strong>blocks:</strong> annotations per item in sw-Latn is 1, required 2" in page
    assert "i2</span> (1)" in page  # the item short of annotators, with the people it has
    assert "3 (60%)" in page  # sw-Latn: 3 of 5 votes unreviewed
    assert "<strong>blocks:</strong> alpha of safety in ta-Taml is" in page
    assert "passes: annotations per item in ta-Taml is 2" in page

    monkeypatch.setenv("SABHA_DATABASE_URL", migrated_url)
    monkeypatch.setenv("SABHA_DATA_DIR", str(tmp_path / "data"))
    shown = CliRunner().invoke(cli, ["annotations", "blockers", "blocked"])
    assert shown.exit_code == 1, shown.output
    assert shown.output.startswith("blocked (label): blocked")
    assert "sw-Latn: 3 items, 1 short of 2 distinct annotators; 3 of 5 votes unreviewed (60%)" in (
        shown.output
    )
    assert "  short: i2 (1)" in shown.output
    assert "  BLOCKS: annotations per item in sw-Latn is 1, required 2: falls short by 1" in (
        shown.output
    )
    assert "  passes: reviewer acceptance in sw-Latn is 1, required 0.8: passes" in shown.output
    missing = CliRunner().invoke(cli, ["annotations", "blockers", "nothing"])
    assert missing.exit_code == 1 and "has no annotation projects" in missing.output


@pytest.mark.postgresql
def test_reviews_made_before_versions_count_unless_their_annotation_changed_since(
    database_url: str,
) -> None:
    """Migration 0011 gives old reviews the version they saw when nothing changed since."""
    import sqlalchemy as sa

    from sabha.annotation.votes import annotation_version
    from sabha.platform.db import make_engine, upgrade_database

    engine = make_engine(database_url)
    upgrade_database(engine, "0010")
    tables = sa.MetaData()
    tables.reflect(engine)
    day = datetime(2026, 11, 1, tzinfo=UTC)
    kept, edited = label("unsafe"), label("safe")
    rows: dict[str, list[dict[str, Any]]] = {
        "user_account": [
            {
                "id": 1,
                "username": "mkaguzi",
                "username_key": "mkaguzi",
                "is_active": True,
                "languages": [],
                "created_at": day,
            }
        ],
        "annotation_project": [
            {
                "id": 1,
                "dataset_name": "old",
                "language": "sw-Latn",
                "task_type": "label",
                "title": "old",
                "annotations_per_item": 2,
                "options": {"hazards": ["fire"]},
                "created_at": day,
            }
        ],
        "source_item": [
            {
                "id": 1,
                "project_id": 1,
                "key": "i0",
                "split": "test",
                "data": {"text": "t"},
                "labelstudio_task_id": 5,
                "created_at": day,
            }
        ],
        "annotation": [
            {
                "id": n,
                "labelstudio_annotation_id": n,
                "item_id": 1,
                "labelstudio_user_id": 10 + n,
                "result": result,
                "was_cancelled": False,
                "created_at": day,
                "updated_at": day + timedelta(days=changed),
                "synced_at": day,
            }
            for n, result, changed in ((1, kept, 0), (2, edited, 5))
        ],
        "annotation_review": [
            {
                "id": n,
                "annotation_id": n,
                "reviewer_id": 1,
                "verdict": "accepted",
                "comment": "",
                "created_at": day + timedelta(days=1),
            }
            for n in (1, 2)
        ],
    }
    with engine.begin() as connection:
        for name, values in rows.items():
            connection.execute(tables.tables[name].insert(), values)
    upgrade_database(engine, "0011")
    with engine.connect() as connection:
        versions = dict(
            connection.execute(
                sa.text("SELECT annotation_id, annotation_version FROM annotation_review")
            ).all()
        )
    engine.dispose()
    # Annotation 2 was edited four days after its review: that review saw another version.
    assert versions == {1: annotation_version(kept), 2: None}
