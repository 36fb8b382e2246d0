"""Who can reach what in Label Studio: accounts come only through Sabha, and items of
the private held-out split only the private server's trusted annotators.

Against real Label Studio 1.23.2 servers started as Sabha starts them.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from labelstudio_fixture import (
    PEOPLE,
    REPO,
    LabelStudioForTests,
    free_port,
    labelstudio_token,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from webtools import csrf_token, make_web_app, sign_in

from sabha.annotation.configs import LabelingOptions
from sabha.annotation.gates import ReleaseGates
from sabha.annotation.labelstudio import LabelStudioClient, LabelStudioError
from sabha.annotation.labelstudio_server import (
    PRIVATE_ID_BASE,
    LabelStudioAccount,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import DatasetVersion, Role, SourceItem
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import (
    create_annotation_project,
    provision_project,
    release_annotated_dataset,
    sync_annotation_projects,
    upload_source_items,
)
from sabha.platform.services.labelstudio import announce_labelstudio, labelstudio_for
from sabha.platform.settings import Settings

PASSWORD = "correct horse battery"


def test_labelstudio_sign_up_page_refuses_a_stranger(labelstudio: LabelStudioForTests) -> None:
    email = f"stranger-{uuid.uuid4().hex[:8]}@example.org"
    with httpx.Client(base_url=labelstudio.url, timeout=30) as stranger:
        login = stranger.get("/user/login/")
        assert login.status_code == 200
        assert "/user/signup" not in login.text  # no sign-up link is offered
        form = stranger.get("/user/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, "Label Studio's sign-up page has no CSRF field"
        answer = stranger.post(
            "/user/signup/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "email": email,
                "password": "a-long-enough-password-1",
                "how_find_us": "Other",
            },
            headers={"Referer": f"{labelstudio.url}/user/signup/"},
        )
    assert answer.status_code == 403, answer.text[:500]
    assert email not in labelstudio.client().list_users()


# -- private items: a separate, private Label Studio --------------------------------------


def _rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _label(hazard: str, safety: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "hazard", "to_name": "text", "type": "choices",
         "value": {"choices": [hazard]}},
        {"from_name": "safety", "to_name": "text", "type": "choices",
         "value": {"choices": [safety]}},
    ]  # fmt: skip


def _everything_readable(url: str, token: str) -> str:
    """All a member of a Label Studio can list: projects, their tasks and annotations."""
    seen = []
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30
    ) as member:
        projects = member.get("/api/projects/", params={"page_size": 1000}).json()["results"]
        seen.append(json.dumps(projects, ensure_ascii=False))
        for project in projects:
            tasks = member.get("/api/tasks/", params={"project": project["id"], "fields": "all"})
            seen.append(tasks.text)
    return "\n".join(seen)


def test_a_community_project_refuses_private_items_and_a_private_one_public_items(
    db: Engine, tmp_path: Path
) -> None:
    community = create_annotation_project(db, "kisan", "sw-Latn", "qa")
    private = create_annotation_project(db, "kisan", "sw-Latn", "qa", private=True)
    mixed = _rows(
        tmp_path / "mixed.jsonl",
        [
            {"id": "q1", "question": "Mahindi yapandwe lini?"},
            {"id": "q2", "question": "SIRI", "split": "private"},
            {"id": "q3", "question": "Mbolea gani?", "split": "test"},
        ],
    )
    with pytest.raises(ValidationFailed) as refused:
        upload_source_items(db, community.id or 0, mixed)
    assert refused.value.problems == [
        "line 2: field 'split' is 'private', but this project is on the community Label "
        "Studio, where every annotator can read it"
    ]
    with pytest.raises(ValidationFailed, match="nothing was imported") as refused:
        upload_source_items(db, private.id or 0, mixed)
    assert refused.value.problems == [
        "line 3: field 'split' is 'test', but this project holds the private held-out split only"
    ]
    with Session(db) as session:
        assert session.exec(select(SourceItem)).all() == []
    held_out = _rows(tmp_path / "held-out.jsonl", [{"id": "q2", "question": "SIRI"}])
    assert upload_source_items(db, private.id or 0, held_out) == 1  # private by default
    with Session(db) as session:
        assert session.exec(select(SourceItem.split)).all() == ["private"]
    with pytest.raises(Exception, match="would show them to every annotator"):
        provision_project(db, LabelStudioClient("http://127.0.0.1:9", "t0ken-x"), private.id or 0)


@pytest.mark.slow
def test_a_private_labelstudio_with_low_ids_is_refused(labelstudio: LabelStudioForTests) -> None:
    not_private = LabelStudioClient(labelstudio.url, labelstudio.admin.token, private=True)
    with pytest.raises(LabelStudioError, match="below 1,000,000,000"):
        not_private.create_project("held out", "<View></View>")


@pytest.mark.slow
def test_private_items_are_annotated_on_the_private_labelstudio_by_trusted_annotators_only(
    db: Engine,
    labelstudio: LabelStudioForTests,
    labelstudio_private: LabelStudioForTests,
    tmp_path: Path,
) -> None:
    dataset = f"kilimo-{uuid.uuid4().hex[:8]}"
    secret = f"SIRI-YA-MTIHANI-{uuid.uuid4().hex}"
    options = LabelingOptions(hazards=("pests", "weather"))
    community = create_annotation_project(
        db, dataset, "sw-Latn", "label", annotations_per_item=1, options=options
    )
    held_out = create_annotation_project(
        db, dataset, "sw-Latn", "label", annotations_per_item=1, options=options, private=True
    )
    public_rows = [{"id": f"p{n}", "text": f"Nyunyizia dawa shambani {n}"} for n in range(2)]
    upload_source_items(db, community.id or 0, _rows(tmp_path / "public.jsonl", public_rows))
    upload_source_items(
        db, held_out.id or 0, _rows(tmp_path / "private.jsonl", [{"id": "s1", "text": secret}])
    )
    announce_labelstudio(labelstudio.server)
    announce_labelstudio(labelstudio_private.server)
    settings = dict(
        label_studio_data_dir=labelstudio.server.data_dir,
        label_studio_private_data_dir=labelstudio_private.server.data_dir,
        label_studio_venv=REPO / ".venv-labelstudio",
    )
    app = make_web_app(db, tmp_path, **settings)
    sabha = Settings(data_dir=tmp_path / "web-data", **settings)  # type: ignore[arg-type]
    provision_project(db, labelstudio_for(sabha, community), community.id or 0)
    ls_private = provision_project(db, labelstudio_for(sabha, held_out), held_out.id or 0)
    assert ls_private >= PRIVATE_ID_BASE
    with Session(db) as session:
        private_task = session.exec(
            select(SourceItem.labelstudio_task_id).where(SourceItem.project_id == held_out.id)
        ).one()
    assert private_task is not None and private_task >= PRIVATE_ID_BASE

    # A member of the community Label Studio reads everything there: never the private item.
    member = labelstudio.people[PEOPLE[0]].token
    assert secret not in _everything_readable(labelstudio.url, member)
    assert secret not in _everything_readable(labelstudio.url, labelstudio.admin.token)
    direct = httpx.get(
        f"{labelstudio.url}/api/tasks/{private_task}",
        headers={"Authorization": f"Token {member}"},
    )
    assert direct.status_code == 404

    # In Sabha, an annotator sees the community project only; a trusted one both.
    with session_scope(db) as session:
        for name, roles in (
            ("mgeni", [Role.ANNOTATOR]),
            ("mwalimu", [Role.ANNOTATOR, Role.REVIEWER]),
        ):
            user = create_user(session, name, password=PASSWORD, roles=roles)
            session.flush()
            user.languages = ["sw-Latn"]
            session.add(user)
    guest = app.test_client()
    sign_in(guest, "mgeni", PASSWORD)
    csrf = csrf_token(guest.get("/account").get_data(as_text=True))
    page = guest.get("/annotate").get_data(as_text=True)
    assert f"/annotate/projects/{community.id}/join" in page
    assert f"/annotate/projects/{held_out.id}/join" not in page
    refused = guest.post(f"/annotate/projects/{held_out.id}/join", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "trusted annotators" in refused.get_data(as_text=True)

    teacher = app.test_client()
    sign_in(teacher, "mwalimu", PASSWORD)
    csrf = csrf_token(teacher.get("/account").get_data(as_text=True))
    assert f"/annotate/projects/{held_out.id}/join" in teacher.get("/annotate").get_data(True)
    joined = teacher.post(f"/annotate/projects/{held_out.id}/join", data={"csrf_token": csrf})
    html = joined.get_data(as_text=True)
    assert joined.status_code == 200 and f"{labelstudio_private.url}/projects/{ls_private}/" in html
    email, password = re.findall(r'class="secret" dir="ltr"><code>([^<]+)</code>', html)
    assert email not in labelstudio.client().list_users()  # no community account was made
    trusted = LabelStudioClient(
        labelstudio_private.url,
        labelstudio_token(labelstudio_private.url, email, password),
        private=True,
    )
    assert trusted.whoami() >= PRIVATE_ID_BASE
    trusted.create_annotation(private_task, _label("pests", "unsafe"))
    with Session(db) as session:
        public_tasks = session.exec(
            select(SourceItem.labelstudio_task_id).where(SourceItem.project_id == community.id)
        ).all()
    for task, label in zip(public_tasks, ("unsafe", "safe"), strict=True):
        labelstudio.client(PEOPLE[0]).create_annotation(task or 0, _label("weather", label))

    # One sync round reads each project from its own server.
    done = sync_annotation_projects(db, lambda p: labelstudio_for(sabha, p), dataset)
    assert [(p.report.created if p.report else p.error) for p in done.projects] == [2, 1]
    credit = teacher.get("/account").get_data(as_text=True)
    assert re.search(rf"{dataset}</td><td><code>sw-Latn</code></td>\s*<td class=\"num\">1<", credit)

    released = release_annotated_dataset(
        db,
        dataset,
        tmp_path / "artifacts",
        gates=ReleaseGates(min_annotations_per_item=1, min_alpha=None, min_acceptance=None),
    )
    assert (released.public_items, released.private_items) == (2, 1)
    with Session(db) as session:
        version = session.exec(select(DatasetVersion)).one()
    assert secret.encode() not in Path(version.artifact_uri or "").read_bytes()


@pytest.mark.slow
def test_labelstudio_start_private_runs_a_second_server_numbered_above_the_community_ids(
    labelstudio_template: tuple[Path, LabelStudioAccount, dict[str, LabelStudioAccount]],
    tmp_path: Path,
) -> None:
    from sabha.platform.services.labelstudio import (
        connect_labelstudio,
        start_labelstudio,
        stop_labelstudio,
    )

    private_dir = tmp_path / "ls-private"
    shutil.copytree(labelstudio_template[0], private_dir)  # migrated once: starts in seconds
    settings = Settings(
        data_dir=tmp_path / "sabha",
        label_studio_private_data_dir=private_dir,
        label_studio_private_port=free_port(),
    )
    server, _admin = start_labelstudio(settings, private=True)
    try:
        assert server.data_dir == private_dir and server.port == settings.label_studio_private_port
        client = connect_labelstudio(settings, private=True)
        assert client.private and client.url == server.url
        project = client.create_project("held out", "<View><Text name='t' value='$t'/></View>")
        (task,) = client.import_tasks(project, [{"data": {"t": "SIRI"}}])
        assert project >= PRIVATE_ID_BASE and task >= PRIVATE_ID_BASE
        with pytest.raises(Exception, match="No Label Studio server is configured"):
            connect_labelstudio(settings)  # the community server is another one
    finally:
        stop_labelstudio(settings, server)
    with pytest.raises(Exception, match="No private Label Studio server"):
        connect_labelstudio(settings, private=True)
    same = settings.model_copy(
        update={"label_studio_url": "http://ls:8080", "label_studio_token": "t0ken-x",
                "label_studio_private_url": "http://ls:8080/",
                "label_studio_private_token": "t0ken-y"}
    )  # fmt: skip
    with pytest.raises(Exception, match="community Label Studio's address"):
        connect_labelstudio(same, private=True)
