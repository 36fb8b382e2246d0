"""The annotator's path in the web UI, against a real Label Studio.

Sign in to Sabha, choose languages, join a project, get a plain Label Studio
account, annotate there with it, and see the annotation counted on /account.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from labelstudio_fixture import REPO, LabelStudioForTests, labelstudio_token
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from webtools import csrf_token, make_web_app, sign_in

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationProject, LabelStudioAccount, Role, SourceItem
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import (
    create_annotation_project,
    provision_project,
    sync_project,
    upload_source_items,
)
from sabha.platform.services.labelstudio import announce_labelstudio

PASSWORD = "correct horse battery"


def _is_superuser(data_dir: Path, email: str) -> bool:
    # Label Studio's API never says whether a user is a superuser; its database does.
    with sqlite3.connect(data_dir / "label_studio.sqlite3") as ls_db:
        row = ls_db.execute(
            "SELECT is_superuser FROM htx_user WHERE email = ?", (email,)
        ).fetchone()
    assert row is not None, f"Label Studio has no user {email}"
    return bool(row[0])


def _project(db: Engine, tmp_path: Path, dataset: str, language: str, texts: list[str]) -> int:
    project = create_annotation_project(db, dataset, language, "qa", annotations_per_item=1)
    path = tmp_path / f"{dataset}-{language}.jsonl"
    rows = [{"id": f"q{i}", "question": text} for i, text in enumerate(texts)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    upload_source_items(db, project.id or 0, path)
    return project.id or 0


def _client(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client, csrf_token(client.get("/account").get_data(as_text=True))


@pytest.mark.slow
def test_annotator_joins_annotates_in_labelstudio_and_is_credited(
    db: Engine,
    labelstudio: LabelStudioForTests,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name = f"asha{uuid.uuid4().hex[:8]}"
    with session_scope(db) as session:
        create_user(session, name, password=PASSWORD, display_name="आशा", roles=[Role.ANNOTATOR])
    admin = labelstudio.client()
    hindi = _project(
        db, tmp_path, f"kisan-{name}", "hi-Deva", ["गेहूं में कौन सा खाद डालें?", "धान कब बोएं?"]
    )
    swahili = _project(db, tmp_path, f"kilimo-{name}", "sw-Latn", ["Mahindi yapandwe lini?"])
    for project_id in (hindi, swahili):
        provision_project(db, admin, project_id)
    data_dir = labelstudio.server.data_dir
    announce_labelstudio(labelstudio.server)
    app = make_web_app(
        db,
        tmp_path,
        label_studio_data_dir=data_dir,
        label_studio_venv=REPO / ".venv-labelstudio",
    )
    browser, csrf = _client(app, name)

    # The annotator says they annotate in Hindi; only the Hindi project is offered.
    assert "Say which languages" in browser.get("/annotate").get_data(as_text=True)
    bad = browser.post("/annotate/languages", data={"languages": "hindi", "csrf_token": csrf})
    assert bad.status_code == 400 and "languages:" in bad.get_data(as_text=True)
    saved = browser.post("/annotate/languages", data={"languages": "hi-Deva", "csrf_token": csrf})
    assert saved.status_code == 302
    page = browser.get("/annotate").get_data(as_text=True)
    assert f"/annotate/projects/{hindi}/join" in page
    assert f"/annotate/projects/{swahili}/join" not in page

    # Joining needs the form's CSRF token, then gives a Label Studio account, shown once.
    forged = browser.post(f"/annotate/projects/{hindi}/join")
    assert forged.status_code == 400
    with Session(db) as session:
        assert session.exec(select(LabelStudioAccount)).all() == []
    joined = browser.post(f"/annotate/projects/{hindi}/join", data={"csrf_token": csrf})
    assert joined.status_code == 200 and joined.headers["Cache-Control"] == "no-store"
    html = joined.get_data(as_text=True)
    email = re.search(r"<code>([^<]+@annotators\.sabha\.local)</code>", html)
    password = re.search(r"Password</th><td[^>]*><code>([^<]+)</code>", html)
    assert email and password, html[:2000]
    email_text, password_text = email.group(1), password.group(1)
    with Session(db) as session:
        ls_project = session.get(AnnotationProject, hindi)
        assert ls_project is not None and ls_project.labelstudio_project_id is not None
        ls_project_id = ls_project.labelstudio_project_id
    assert f"{labelstudio.url}/projects/{ls_project_id}/" in html
    assert password_text not in caplog.text  # never logged

    # A plain member of the organization, not a superuser, who can sign in with that password.
    users = admin.list_users()
    assert email_text in users
    assert not _is_superuser(data_dir, email_text)
    token = labelstudio_token(labelstudio.url, email_text, password_text)
    annotator = LabelStudioClient(labelstudio.url, token)
    assert annotator.whoami() == users[email_text]

    # Joining again links to the project (a page, not a redirect); no new password.
    again = browser.post(f"/annotate/projects/{hindi}/join", data={"csrf_token": csrf})
    assert again.status_code == 200 and "Location" not in again.headers
    assert f'href="{labelstudio.url}/projects/{ls_project_id}/data"' in again.get_data(True)
    assert "Password</th>" not in again.get_data(as_text=True)

    # They annotate in Label Studio; after a sync their page counts it, per dataset and language.
    with Session(db) as session:
        task = session.exec(
            select(SourceItem.labelstudio_task_id).where(SourceItem.project_id == hindi)
        ).first()
    assert task is not None
    answer = [
        {
            "from_name": "answer",
            "to_name": "question",
            "type": "textarea",
            "value": {"text": ["यूरिया और डीएपी"]},
        }
    ]
    annotator.create_annotation(task, answer)
    assert sync_project(db, admin, hindi).created == 1
    account = browser.get("/account").get_data(as_text=True)
    row = re.search(
        rf"<td dir=\"auto\">kisan-{name}</td><td><code>hi-Deva</code></td>\s*"
        r"<td class=\"num\">(\d+)</td>",
        account,
    )
    assert row and row.group(1) == "1", account
    assert "1</td>" in browser.get("/annotate").get_data(as_text=True)

    # A lost password is replaced: the new one works, the old one no longer does.
    renewed = browser.post("/annotate/labelstudio-password", data={"csrf_token": csrf})
    new_password = re.search(r"Password</th><td[^>]*><code>([^<]+)</code>", renewed.get_data(True))
    assert renewed.status_code == 200 and new_password
    assert new_password.group(1) != password_text
    assert labelstudio_token(labelstudio.url, email_text, new_password.group(1)) == token
    with pytest.raises(AssertionError, match="refused the e-mail and password"):
        labelstudio_token(labelstudio.url, email_text, password_text)


def test_joining_needs_the_annotator_role_and_a_running_labelstudio(
    db: Engine, tmp_path: Path
) -> None:
    with session_scope(db) as session:
        create_user(session, "dev", password=PASSWORD, roles=[Role.SUBMITTER])
        create_user(session, "asha", password=PASSWORD, roles=[Role.ANNOTATOR])
    project_id = _project(db, tmp_path, "kisan-advisory", "hi-Deva", ["धान कब बोएं?"])
    app = make_web_app(db, tmp_path)

    dev, dev_csrf = _client(app, "dev")
    assert dev.get("/annotate").status_code == 403
    refused = dev.post(f"/annotate/projects/{project_id}/join", data={"csrf_token": dev_csrf})
    assert refused.status_code == 403 and "annotator role" in refused.get_data(as_text=True)

    asha, csrf = _client(app, "asha")
    not_open = asha.post(f"/annotate/projects/{project_id}/join", data={"csrf_token": csrf})
    assert not_open.status_code == 400
    assert "not open in Label Studio yet" in not_open.get_data(as_text=True)
    with session_scope(db) as session:
        project = session.get(AnnotationProject, project_id)
        assert project is not None
        project.labelstudio_project_id = 4242
        session.add(project)
    down = asha.post(f"/annotate/projects/{project_id}/join", data={"csrf_token": csrf})
    text = down.get_data(as_text=True)
    assert down.status_code == 400 and "none runs here" in text
    assert "sabha labelstudio start" in text
    with Session(db) as session:
        assert session.exec(select(LabelStudioAccount)).all() == []


def test_joining_is_rate_limited_per_user(db: Engine, tmp_path: Path) -> None:
    with session_scope(db) as session:
        create_user(session, "asha", password=PASSWORD, roles=[Role.ANNOTATOR])
    project_id = _project(db, tmp_path, "kisan-advisory", "hi-Deva", ["धान कब बोएं?"])
    app = make_web_app(db, tmp_path, rate_limits=True)
    asha, csrf = _client(app, "asha")
    answers = [
        asha.post(f"/annotate/projects/{project_id}/join", data={"csrf_token": csrf}).status_code
        for _ in range(11)
    ]
    assert answers == [400] * 10 + [429]  # not open yet, ten times; then too many


def test_join_answers_with_a_link_because_the_csp_forbids_a_cross_origin_redirect(
    db: Engine, tmp_path: Path
) -> None:
    """A browser drops a form post's redirect to another origin under ``form-action 'self'``."""
    with session_scope(db) as session:
        asha = create_user(session, "asha", password=PASSWORD, roles=[Role.ANNOTATOR])
        session.flush()
        session.add(
            LabelStudioAccount(
                user_id=asha.id or 0,
                labelstudio_user_id=77,
                labelstudio_username="asha-1@annotators.sabha.local",
            )
        )
    project_id = _project(db, tmp_path, "kisan-advisory", "hi-Deva", ["धान कब बोएं?"])
    with session_scope(db) as session:
        project = session.get(AnnotationProject, project_id)
        assert project is not None
        project.labelstudio_project_id = 7
        session.add(project)
    app = make_web_app(
        db, tmp_path, label_studio_url="http://ls.example:8080", label_studio_token="t0ken-x"
    )
    asha_client, csrf = _client(app, "asha")
    joined = asha_client.post(f"/annotate/projects/{project_id}/join", data={"csrf_token": csrf})
    assert joined.status_code == 200 and "Location" not in joined.headers
    assert "form-action 'self'" in joined.headers["Content-Security-Policy"]
    html = joined.get_data(as_text=True)
    assert 'id="open-labelstudio" href="http://ls.example:8080/projects/7/data"' in html
    assert "asha-1@annotators.sabha.local" in html and "Password</th>" not in html
