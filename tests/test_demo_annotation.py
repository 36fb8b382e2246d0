"""The demo's Label Studio part: a sample project and a demo annotator who can sign in at once.

``sabha demo`` itself also evaluates with vLLM; these tests run only its
Label Studio step (``start_demo_labelstudio``), on a real Label Studio.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from labelstudio_fixture import REPO, free_port, labelstudio_token
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from webtools import make_web_app, sign_in

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.labelstudio_server import LabelStudioAccount, read_admin_account
from sabha.platform.cli.demo import start_demo_labelstudio
from sabha.platform.domain import AnnotationProject, SourceItem
from sabha.platform.services.annotation import sync_project
from sabha.platform.services.annotation.demo import DEMO_DATASET
from sabha.platform.services.labelstudio import stop_labelstudio
from sabha.platform.settings import Settings


def _settings(db: Engine, tmp_path: Path, data_dir: Path, venv: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "sabha-data",
        database_url=db.url.render_as_string(hide_password=False),
        label_studio_data_dir=data_dir,
        label_studio_venv=venv,
        label_studio_port=free_port(),
    )


def test_demo_skips_label_studio_with_a_note_when_it_is_not_installed(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(db, tmp_path, tmp_path / "ls-data", tmp_path / "no-venv")
    server, _, annotation = start_demo_labelstudio(settings, db, "http://127.0.0.1:5000")
    assert server is None and annotation is None
    said = capsys.readouterr().out
    assert "Skipping the annotation demo: Label Studio is not installed" in said
    assert "make labelstudio" in said
    with Session(db) as session:
        assert session.exec(select(AnnotationProject)).all() == []


@pytest.mark.slow
def test_demo_starts_label_studio_with_a_sample_project_and_an_annotator_who_can_sign_in(
    db: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    labelstudio_template: tuple[Path, LabelStudioAccount, dict[str, LabelStudioAccount]],
) -> None:
    data_dir = tmp_path / "ls-data"
    shutil.copytree(labelstudio_template[0], data_dir)  # migrated already: starts in seconds
    settings = _settings(db, tmp_path, data_dir, REPO / ".venv-labelstudio")
    for run in range(2):  # a second demo run reuses the project and gives new passwords
        server, served, annotation = start_demo_labelstudio(settings, db, "http://127.0.0.1:5000")
        assert server is not None and annotation is not None
        try:
            said = capsys.readouterr().out
            assert f"Label Studio: {server.url}/" in said
            assert "Sample project (5 kisan-advisory questions)" in said
            found = re.search(r"Demo annotator in Label Studio: (\S+) / (\S+)", said)
            sabha = re.search(r"The same annotator in Sabha .*: (\S+) / (\S+)", said)
            assert found and sabha, said
            # The printed sign-in works in Label Studio's own sign-in form.
            token = labelstudio_token(server.url, found.group(1), found.group(2))
            annotator = LabelStudioClient(server.url, token)
            with Session(db) as session:
                projects = session.exec(select(AnnotationProject)).all()
                assert [p.dataset_name for p in projects] == [DEMO_DATASET]
                tasks = session.exec(select(SourceItem.labelstudio_task_id)).all()
            assert len(tasks) == 5 and None not in tasks
            admin = LabelStudioClient(server.url, read_admin_account(data_dir).token)
            ls_project = projects[0].labelstudio_project_id
            assert ls_project is not None
            assert admin.webhooks(ls_project) == ["http://127.0.0.1:5000/hooks/labelstudio"]
            assert served.label_studio_webhook_secret
            if run == 0:
                task = tasks[0]
                assert task is not None
                annotator.create_annotation(
                    task,
                    [
                        {
                            "from_name": "answer",
                            "to_name": "question",
                            "type": "textarea",
                            "value": {"text": ["नवंबर के पहले पखवाड़े में"]},
                        }
                    ],
                )
                assert sync_project(db, admin, projects[0].id or 0).created == 1
                # The Sabha sign-in works too, and the annotation counts on /account.
                app = make_web_app(db, tmp_path, label_studio_data_dir=data_dir)
                browser = app.test_client()
                sign_in(browser, sabha.group(1), sabha.group(2))
                account = browser.get("/account").get_data(as_text=True)
                assert re.search(
                    rf"{DEMO_DATASET}</td><td><code>hi-Deva</code></td>\s*<td class=\"num\">1<",
                    account,
                ), account
        finally:
            stop_labelstudio(settings, server)
