"""Sync with a real Label Studio: webhooks and reconciliation lose nothing and duplicate nothing."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labelstudio_fixture import PEOPLE, LabelStudioForTests, free_port
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from werkzeug.serving import BaseWSGIServer, make_server

from sabha.annotation.configs import LabelingOptions
from sabha.platform.domain import Annotation
from sabha.platform.services.annotation import (
    annotator_counts,
    create_annotation_project,
    dataset_agreement,
    items_needing_annotations,
    next_items_for,
    provision_project,
    sync_project,
    upload_source_items,
)
from sabha.platform.settings import Settings

pytestmark = pytest.mark.slow
SECRET = "test-webhook-secret-" + uuid.uuid4().hex
HAZARDS = ("pests", '<weather & "soil">')


class Receiver:
    """Sabha's web app serving the webhook endpoint on 127.0.0.1, in a thread."""

    def __init__(self, database_url: str, labelstudio: LabelStudioForTests) -> None:
        from sabha.platform.app import create_app

        app = create_app(webhook_settings(database_url, labelstudio))
        self.port = free_port()
        self.server: BaseWSGIServer = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/labelstudio"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def webhook_settings(database_url: str, labelstudio: LabelStudioForTests) -> Settings:
    """Sabha with the webhook secret, reading annotations back with the admin's token."""
    return Settings(
        database_url=database_url,
        label_studio_webhook_secret=SECRET,
        label_studio_url=labelstudio.url,
        label_studio_token=labelstudio.admin.token,
        rate_limits=False,
    )


@pytest.fixture
def receiver(migrated_url: str, db: Engine, labelstudio: LabelStudioForTests) -> Iterator[Receiver]:
    running = Receiver(migrated_url, labelstudio)
    yield running
    running.stop()


def _label(hazard: str, safety: str) -> list[dict[str, Any]]:
    return [
        {
            "from_name": "hazard",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [hazard]},
        },
        {
            "from_name": "safety",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [safety]},
        },
    ]


def _stored(db: Engine) -> list[int]:
    with Session(db) as session:
        return sorted(session.exec(select(Annotation.labelstudio_annotation_id)).all())


def _project(db: Engine, tmp_path: Path, language: str = "sw-Latn", n: int = 4) -> int:
    name = f"kisan-safety-{uuid.uuid4().hex[:8]}"
    project = create_annotation_project(
        db, name, language, "label", options=LabelingOptions(hazards=HAZARDS)
    )
    rows = [{"id": f"s{i}", "text": f"Nyunyizia dawa {i}"} for i in range(n)]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    upload_source_items(db, project.id or 0, path)
    return project.id or 0


def test_annotations_made_while_sabha_is_down_are_recovered_exactly_once(
    db: Engine, labelstudio: LabelStudioForTests, receiver: Receiver, tmp_path: Path
) -> None:
    admin = labelstudio.client()
    project_id = _project(db, tmp_path)
    provision_project(db, admin, project_id, webhook_url=receiver.url, webhook_secret=SECRET)
    a, b = labelstudio.client(PEOPLE[0]), labelstudio.client(PEOPLE[1])
    a_id, b_id = a.whoami(), b.whoami()

    # Sabha is up: annotator A's work arrives through the webhook.
    for task in next_items_for(db, project_id, a_id, n=10):
        a.create_annotation(task, _label("pests", "unsafe"))
    assert len(_stored(db)) == 4

    # Sabha is down while annotator B works; nothing arrives.
    receiver.stop()
    made = [
        b.create_annotation(task, _label(HAZARDS[1], "unsafe")).id
        for task in next_items_for(db, project_id, b_id, n=10)
    ]
    assert len(made) == 4 and len(_stored(db)) == 4

    # Reconciliation after the restart recovers exactly B's four, and again nothing.
    report = sync_project(db, admin, project_id)
    assert (report.created, report.unchanged, report.deleted) == (4, 4, 0)
    assert set(made) <= set(_stored(db)) and len(_stored(db)) == 8
    again = sync_project(db, admin, project_id)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8)

    # k=2 different annotators per item: nothing is missing, nobody gets an item twice.
    assert items_needing_annotations(db, project_id) == {}
    assert next_items_for(db, project_id, a_id) == []
    assert annotator_counts(db, project_id) == {a_id: 4, b_id: 4}


def test_an_edit_and_a_deletion_made_in_label_studio_reach_sabha(
    db: Engine, labelstudio: LabelStudioForTests, receiver: Receiver, tmp_path: Path
) -> None:
    admin = labelstudio.client()
    project_id = _project(db, tmp_path, n=2)
    provision_project(db, admin, project_id, webhook_url=receiver.url, webhook_secret=SECRET)
    a = labelstudio.client(PEOPLE[0])
    first, second = (
        a.create_annotation(t, _label("pests", "safe"))
        for t in next_items_for(db, project_id, a.whoami())
    )
    a.update_annotation(first.id, _label("pests", "unsafe"))
    with Session(db) as session:
        row = session.exec(
            select(Annotation).where(Annotation.labelstudio_annotation_id == first.id)
        ).one()
    assert row.result[1]["value"]["choices"] == ["unsafe"]  # by webhook
    receiver.stop()
    a.delete_annotation(second.id)  # missed by Sabha
    assert sync_project(db, admin, project_id).deleted == 1
    assert _stored(db) == [first.id]


def test_a_webhook_without_the_secret_is_refused_and_changes_nothing(
    db: Engine, migrated_url: str, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    from sabha.platform.app import create_app

    admin = labelstudio.client()
    project_id = _project(db, tmp_path, n=1)
    provision_project(db, admin, project_id)
    (task,) = admin.task_ids(admin_project(db, project_id))
    made = labelstudio.client(PEOPLE[0]).create_annotation(task, _label("pests", "safe"))
    payload = {
        "action": "ANNOTATION_CREATED",
        "annotation": {
            "id": made.id,
            "task": task,
            "completed_by": made.user_id,
            "result": made.result,
        },
    }
    client = create_app(webhook_settings(migrated_url, labelstudio)).test_client()
    for headers in ({}, {"X-Sabha-Webhook-Secret": "wrong"}, {"X-Sabha-Webhook-Secret": ""}):
        answer = client.post("/hooks/labelstudio", json=payload, headers=headers)
        assert answer.status_code == 401
    assert _stored(db) == []
    good = {"X-Sabha-Webhook-Secret": SECRET}
    assert client.post("/hooks/labelstudio", json=payload, headers=good).status_code == 200
    assert client.post("/hooks/labelstudio", json=payload, headers=good).json == {
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "deleted": 0,
        "unknown_tasks": 0,
        "refused": 0,
        "problems": [],
        "judged": False,
    }
    assert _stored(db) == [made.id]
    assert client.post("/hooks/labelstudio", data="nonsense", headers=good).status_code == 400
    # No secret configured: every caller is unknown.
    closed = create_app(Settings(database_url=migrated_url)).test_client()
    assert closed.post("/hooks/labelstudio", json=payload, headers=good).status_code == 401


def admin_project(db: Engine, project_id: int) -> int:
    from sabha.platform.domain import AnnotationProject

    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        assert project is not None and project.labelstudio_project_id is not None
        return project.labelstudio_project_id


def test_agreement_per_language_and_overall_from_real_annotations(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    admin = labelstudio.client()
    name = f"agree-{uuid.uuid4().hex[:8]}"
    a, b = labelstudio.client(PEOPLE[0]), labelstudio.client(PEOPLE[1])
    plans = {  # language -> (A's labels, B's labels) per item
        "sw-Latn": (["safe", "unsafe", "safe", "unsafe"], ["safe", "unsafe", "safe", "unsafe"]),
        "ta-Taml": (["safe", "unsafe", "safe", "unsafe"], ["unsafe", "safe", "safe", "unsafe"]),
    }
    for language, (labels_a, labels_b) in plans.items():
        project = create_annotation_project(
            db, name, language, "label", options=LabelingOptions(hazards=HAZARDS)
        )
        path = tmp_path / f"{language}.jsonl"
        path.write_text(
            "".join(json.dumps({"id": f"i{i}", "text": "t"}) + "\n" for i in range(4)), "utf-8"
        )
        upload_source_items(db, project.id or 0, path)
        provision_project(db, admin, project.id or 0)
        for who, labels in ((a, labels_a), (b, labels_b)):
            tasks = next_items_for(db, project.id or 0, who.whoami())
            for task, label in zip(tasks, labels, strict=True):
                who.create_annotation(task, _label("pests", label))
        sync_project(db, admin, project.id or 0)
    report = dataset_agreement(db, name)
    assert report["sw-Latn"]["safety"].value == pytest.approx(1.0)
    assert report["ta-Taml"]["safety"].value is not None
    assert report["ta-Taml"]["safety"].value < 0.5
    assert report["overall"]["safety"].items == 8
    assert report["sw-Latn"]["hazard"].value is None  # everyone chose "pests"
