"""Acceptance in a real browser: an annotator goes from Sabha into Label Studio and back.

Debian's ``chromium``, driven by ``playwright``, signs in to Sabha as an
annotator, joins a project, annotates one task in Label Studio's own
labeling UI, and sees the credit on /account (brought by Label Studio's
webhook); then joins again, as on a later day, and lands in the project.
Everything is real: Sabha's web app on a loopback port (with its strict
Content-Security-Policy), Label Studio 1.23.2, the webhook between them.

``make browser`` installs chromium and fonts-noto-core (the scripts the
pages show); playwright's own browser download is not used. Screenshots go to
``$SABHA_TEST_ARTIFACTS`` (default ``tests/artifacts/``, ignored by git).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsertools import artifacts_dir, serve
from labelstudio_fixture import REPO, LabelStudioForTests
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationProject, Role
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import (
    create_annotation_project,
    provision_project,
    upload_source_items,
)
from sabha.platform.services.annotators import set_annotator_languages
from sabha.platform.services.labelstudio import announce_labelstudio
from sabha.platform.settings import Settings
from sabha.platform.web.catalogs import read_catalog

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _hindi(english: str) -> str:
    """Sabha's Hindi for an interface string (the annotator's browser asks for Hindi)."""
    entry = read_catalog("hi").get(english)
    assert entry is not None and entry.string, f"hi.po lacks {english!r}"
    return str(entry.string)


PASSWORD = "correct horse battery staple"
ANSWER = "धान की रोपाई जून के अंत से जुलाई के मध्य तक करें, जब मानसून की अच्छी बारिश हो जाए।"
WAIT_MS = 90_000  # Label Studio's labeling UI is a large React app; two busy cores are slow


@pytest.fixture
def sabha_site(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> Iterator[tuple[str, int, str]]:
    """Sabha serving on a port, a Hindi project in Label Studio with a webhook, an annotator.

    Yields Sabha's URL, the project's id and the annotator's user name.
    """
    secret = uuid.uuid4().hex
    announce_labelstudio(labelstudio.server)  # Sabha runs this Label Studio: it finds it here
    settings = Settings(
        data_dir=tmp_path / "web-data",
        database_url=db.url.render_as_string(hide_password=False),
        label_studio_data_dir=labelstudio.server.data_dir,
        label_studio_venv=REPO / ".venv-labelstudio",
        label_studio_webhook_secret=secret,
        rate_limits=False,
    )
    name = f"asha{uuid.uuid4().hex[:6]}"
    with session_scope(db) as session:
        user = create_user(session, name, password=PASSWORD, roles=[Role.ANNOTATOR])
        session.flush()
        user_id = user.id or 0
    set_annotator_languages(db, user_id, ["hi-Deva"])
    project = create_annotation_project(
        db, f"kisan-{name}", "hi-Deva", "qa", annotations_per_item=1, title=f"किसान सलाह {name}"
    )
    rows = tmp_path / "questions.jsonl"
    rows.write_text(
        json.dumps({"id": "q1", "question": "धान की रोपाई कब करें?"}, ensure_ascii=False) + "\n",
        "utf-8",
    )
    upload_source_items(db, project.id or 0, rows)
    with serve(settings) as url:
        provision_project(
            db,
            labelstudio.client(),
            project.id or 0,
            webhook_url=f"{url}/hooks/labelstudio",
            webhook_secret=secret,
        )
        yield url, project.id or 0, name


def _credit(page: Any, dataset: str) -> str:
    row = page.locator("table.credit-by-project tr", has_text=dataset)
    return str(row.locator("td.num").first.inner_text()) if row.count() else "none"


def test_an_annotator_joins_annotates_in_labelstudio_and_sees_the_credit(
    browser: Any, sabha_site: tuple[str, int, str], labelstudio: LabelStudioForTests, db: Engine
) -> None:
    sabha, project_id, name = sabha_site
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        assert project is not None and project.labelstudio_project_id is not None
        ls_project, dataset, title = (
            project.labelstudio_project_id,
            project.dataset_name,
            project.title,
        )
    shots = artifacts_dir("browser-annotation")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="hi-IN")
    page.set_default_timeout(WAIT_MS)
    blocked: list[str] = []  # what Chromium refused under Sabha's Content-Security-Policy

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text and page.url.startswith(sabha):
            blocked.append(message.text)

    page.on("console", on_console)
    step = 0

    def shot(what: str) -> None:
        nonlocal step
        step += 1
        page.screenshot(path=str(shots / f"{step:02d}-{what}.png"), full_page=True)

    try:
        # Sign in to Sabha as the annotator.
        page.goto(f"{sabha}/login")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", PASSWORD)
        # The browser asks for Hindi (locale hi-IN), so Sabha's pages are in Hindi.
        assert page.locator("html").get_attribute("lang") == "hi"
        page.get_by_role("button", name=_hindi("Sign in")).click()
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))

        # Join the Hindi project: a Label Studio account, shown once, and a link.
        page.goto(f"{sabha}/annotate")
        shot("annotate")
        page.locator("tr", has_text=title).get_by_role("button", name=_hindi("Join")).click()
        page.wait_for_url(re.compile(rf"/annotate/projects/{project_id}/join$"))
        secrets = page.locator("td.secret code").all_inner_texts()
        assert len(secrets) == 2, page.content()[:2000]
        email, password = secrets
        shot("account-ready")
        page.locator("a#open-labelstudio").click()

        # Label Studio's own sign-in form, then its project.
        page.wait_for_url(re.compile(re.escape(labelstudio.url) + r"/user/login/"))
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        shot("labelstudio-sign-in")
        page.locator("button[type=submit], input[type=submit]").first.click()
        page.wait_for_url(re.compile(rf"/projects/{ls_project}/data"))

        # Annotate one task in Label Studio's labeling UI; the instructions are in Hindi.
        page.get_by_role("button", name="Label All Tasks").click()
        answer_box = page.locator("textarea[name=answer]")
        answer_box.wait_for()
        assert page.get_by_text("लंबाई: 2 से 5 वाक्य", exact=False).count() >= 1
        answer_box.fill(ANSWER)
        page.get_by_role("button", name="Add").click()
        shot("labelstudio-answer")
        with page.expect_response(
            lambda r: "/annotations" in r.url and r.request.method == "POST"
        ) as submitted:
            page.get_by_test_id("bottombar-submit-button").click()
        assert submitted.value.status == 201, submitted.value.text()[:500]
        shot("labelstudio-submitted")

        # Back in Sabha: the webhook brought the annotation; /account counts it.
        deadline = time.monotonic() + 30
        while True:
            page.goto(f"{sabha}/account")
            if _credit(page, dataset) == "1" or time.monotonic() > deadline:
                break
            time.sleep(1)
        shot("account-credit")
        assert _credit(page, dataset) == "1", page.content()[:3000]

        # A later visit: Join leads straight into the project (already signed in there).
        page.goto(f"{sabha}/annotate")
        page.locator("tr", has_text=title).get_by_role("button", name=_hindi("Join")).click()
        page.locator("a#open-labelstudio").click()
        page.wait_for_url(
            re.compile(re.escape(labelstudio.url) + rf"/projects/{ls_project}/data"),
            timeout=20_000,
        )
        shot("labelstudio-again")
    except BaseException:
        shot("failure")
        raise
    finally:
        page.close()
    assert blocked == []
