"""A hostile annotator against a real Label Studio: Sabha records only what Label Studio holds.

Annotators are plain members of Label Studio's organization, made as Sabha
makes them (through the API with the admin's token, a password set on the
data dir), each with their own API token. Label Studio Community lets such a
member read every webhook with its secret header, read and change other
people's annotations, and create annotations in another person's name with
labels the config never offered. Sabha treats webhooks as notices and reads
each task back with its own token, refuses what no annotator could have made
in the labeling interface, counts each person once per item and voids reviews
when an annotation changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from labelstudio_fixture import PEOPLE, REPO, LabelStudioForTests, labelstudio_token
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from test_annotation_sync import SECRET, Receiver

from sabha.annotation.configs import LabelingOptions
from sabha.annotation.gates import ReleaseGates
from sabha.annotation.labelstudio import LabelStudioAnnotation, LabelStudioClient
from sabha.annotation.labelstudio_server import find_labelstudio_command, set_labelstudio_password
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, AnnotationProject, Role, SourceItem, TokenScope
from sabha.platform.services.accounts import create_access_token, create_user
from sabha.platform.services.annotation import (
    check_release_gates,
    create_annotation_project,
    provision_project,
    sync_project,
    upload_source_items,
)

pytestmark = pytest.mark.slow
HAZARDS = ("pests", "weather")
GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=None, min_acceptance=0.8)


@dataclass
class Member:
    """A plain member of Label Studio's organization with their own token."""

    id: int
    token: str

    def http(self, url: str) -> httpx.Client:
        """Label Studio's API as this member."""
        return httpx.Client(
            base_url=url, headers={"Authorization": f"Token {self.token}"}, timeout=30
        )

    def client(self, url: str) -> LabelStudioClient:
        """Sabha's client with this member's token (what the labeling interface does)."""
        return LabelStudioClient(url, self.token)


@pytest.fixture(scope="module")
def members(labelstudio: LabelStudioForTests) -> dict[str, Member]:
    """Mallory (hostile) and Bob (honest): plain members, made as Sabha makes annotators."""
    admin = labelstudio.client()
    command = find_labelstudio_command(REPO / ".venv-labelstudio")
    made = {}
    for name in ("mallory", "bob"):
        email = f"{name}-{uuid.uuid4().hex[:8]}@annotators.sabha.local"
        user_id = admin.create_user(email, username=email.split("@")[0])
        password = f"password-{uuid.uuid4().hex}"
        set_labelstudio_password(labelstudio.server.data_dir, command, email, password)
        made[name] = Member(user_id, labelstudio_token(labelstudio.url, email, password))
    return made


@pytest.fixture
def receiver(migrated_url: str, db: Engine, labelstudio: LabelStudioForTests) -> Iterator[Receiver]:
    running = Receiver(migrated_url, labelstudio)
    yield running
    running.stop()


def _label(safety: str, hazard: str = "pests") -> list[dict[str, Any]]:
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


@dataclass
class Project:
    id: int
    labelstudio_id: int
    tasks: dict[str, int]  # item key -> Label Studio task id


def _project(
    db: Engine, labelstudio: LabelStudioForTests, receiver: Receiver, tmp_path: Path
) -> Project:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    project = create_annotation_project(
        db, name, "sw-Latn", "label", options=LabelingOptions(hazards=HAZARDS)
    )
    path = tmp_path / "items.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"i{n}", "text": f"Nyunyizia dawa {n}"}) + "\n" for n in range(3))
    )
    upload_source_items(db, project.id or 0, path)
    ls_id = provision_project(
        db, labelstudio.client(), project.id or 0, webhook_url=receiver.url, webhook_secret=SECRET
    )
    with Session(db) as session:
        tasks = dict(
            session.exec(
                select(SourceItem.key, SourceItem.labelstudio_task_id).where(
                    SourceItem.project_id == project.id
                )
            ).all()
        )
    return Project(project.id or 0, ls_id, {k: int(t) for k, t in tasks.items()})


def _sabha(db: Engine, project: Project) -> set[tuple[int, int, str]]:
    """Sabha's records of the project: (Label Studio id, annotator, result)."""
    with Session(db) as session:
        rows = session.exec(
            select(Annotation)
            .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
            .where(SourceItem.project_id == project.id)
        ).all()
    return {(a.labelstudio_annotation_id, a.labelstudio_user_id, _key(a.result)) for a in rows}


def _truth(db: Engine, admin: LabelStudioClient, project: Project) -> set[tuple[int, int, str]]:
    """What Label Studio holds for the project's tasks, less what Sabha refuses to record."""
    from sabha.annotation.sync import refusal_reasons

    with Session(db) as session:
        stored = session.get(AnnotationProject, project.id)
    assert stored is not None
    return {
        (a.id, a.user_id, _key(a.result))
        for task in project.tasks.values()
        for a in admin.task_annotations(task)
        if not refusal_reasons(stored, a)
    }


def _key(result: Any) -> str:
    return json.dumps(result, sort_keys=True)


def _notice(action: str, annotation: LabelStudioAnnotation) -> dict[str, Any]:
    """A webhook payload as Label Studio sends it for ``annotation`` (as it was then)."""
    return {
        "action": action,
        "annotation": {
            "id": annotation.id,
            "task": annotation.task_id,
            "completed_by": annotation.user_id,
            "result": annotation.result,
            "was_cancelled": False,
        },
        "task": {"id": annotation.task_id},
    }


def _post_notice(receiver: Receiver, secret: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        receiver.url, json=payload, headers={"X-Sabha-Webhook-Secret": secret}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _read_secret(mallory: Member, url: str, project: Project) -> str:
    """What Label Studio Community shows any member: the webhook with its secret header."""
    with mallory.http(url) as http:
        hooks = http.get("/api/webhooks/", params={"project": project.labelstudio_id}).json()
    (hook,) = [h for h in hooks if h["project"] == project.labelstudio_id]
    secret: str = hook["headers"]["X-Sabha-Webhook-Secret"]
    return secret


def test_a_forged_notice_records_nothing_label_studio_does_not_hold(
    db: Engine,
    labelstudio: LabelStudioForTests,
    members: dict[str, Member],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    project = _project(db, labelstudio, receiver, tmp_path)
    mallory, bob = members["mallory"], members["bob"]
    real = bob.client(labelstudio.url).create_annotation(project.tasks["i0"], _label("safe"))
    assert _sabha(db, project) == {(real.id, bob.id, _key(real.result))}

    secret = _read_secret(mallory, labelstudio.url, project)
    assert secret == SECRET  # any member reads it
    forged = LabelStudioAnnotation(
        real.id + 1000,
        project.tasks["i1"],
        bob.id,
        _label("MAYBE"),
        False,
        real.created_at,
        real.updated_at,
    )
    report = _post_notice(receiver, secret, _notice("ANNOTATION_CREATED", forged))
    assert report["created"] == 0
    as_update = LabelStudioAnnotation(
        real.id,
        real.task_id,
        bob.id,
        _label("unsafe", "weather"),
        False,
        real.created_at,
        real.updated_at,
    )
    _post_notice(receiver, secret, _notice("ANNOTATION_UPDATED", as_update))
    _post_notice(
        receiver, secret, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": real.id}]}
    )
    assert _sabha(db, project) == {(real.id, bob.id, _key(real.result))}
    assert _sabha(db, project) == _truth(db, labelstudio.client(), project)


def test_labels_outside_the_config_and_annotations_in_someone_elses_name_are_refused(
    db: Engine,
    labelstudio: LabelStudioForTests,
    members: dict[str, Member],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    project = _project(db, labelstudio, receiver, tmp_path)
    mallory, bob = members["mallory"], members["bob"]
    honest = bob.client(labelstudio.url).create_annotation(project.tasks["i0"], _label("safe"))
    with mallory.http(labelstudio.url) as http:
        outside = http.post(
            f"/api/tasks/{project.tasks['i1']}/annotations/", json={"result": _label("MAYBE")}
        )
        assert outside.status_code == 201  # Label Studio holds it
        as_bob = http.post(
            f"/api/tasks/{project.tasks['i2']}/annotations/",
            json={"result": _label("unsafe"), "completed_by": bob.id},
        )
        assert as_bob.status_code == 201 and as_bob.json()["completed_by"] == bob.id
        edited = http.patch(f"/api/annotations/{honest.id}/", json={"result": _label("unsafe")})
        assert edited.status_code == 200  # Mallory changed Bob's annotation
    assert _sabha(db, project) == set()  # all three refused by the webhook's read-back

    report = sync_project(db, labelstudio.client(), project.id)
    assert (report.created, report.refused) == (0, 3)
    problems = "\n".join(report.problems)
    assert "control 'safety' chose 'MAYBE', which is not one of 'safe', 'unsafe'" in problems
    assert (
        f"made or last changed by Label Studio user {mallory.id}, not by its annotator {bob.id}"
        in problems
    )
    # Bob changes his annotation back himself: it is his again, and recorded.
    bob.client(labelstudio.url).update_annotation(honest.id, _label("safe"))
    assert _sabha(db, project) == {(honest.id, bob.id, _key(_label("safe")))}
    assert _sabha(db, project) == _truth(db, labelstudio.client(), project)


def test_replayed_notices_neither_revert_nor_resurrect(
    db: Engine,
    labelstudio: LabelStudioForTests,
    members: dict[str, Member],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    project = _project(db, labelstudio, receiver, tmp_path)
    bob = members["bob"].client(labelstudio.url)
    first = bob.create_annotation(project.tasks["i0"], _label("safe"))
    changed = bob.update_annotation(first.id, _label("unsafe"))
    secret = _read_secret(members["mallory"], labelstudio.url, project)
    _post_notice(receiver, secret, _notice("ANNOTATION_UPDATED", first))  # the old version
    _post_notice(receiver, secret, _notice("ANNOTATION_CREATED", first))
    assert _sabha(db, project) == {(first.id, members["bob"].id, _key(changed.result))}

    bob.delete_annotation(first.id)
    assert _sabha(db, project) == set()
    for action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        _post_notice(receiver, secret, _notice(action, changed))
    assert _sabha(db, project) == set()  # not resurrected


def test_a_hostile_annotator_against_a_real_label_studio(
    db: Engine,
    labelstudio: LabelStudioForTests,
    members: dict[str, Member],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """The acceptance test: Sabha's records equal Label Studio's truth; gates count people."""
    from test_annotation_sync import webhook_settings

    from sabha.platform.app import create_app

    project = _project(db, labelstudio, receiver, tmp_path)
    admin = labelstudio.client()
    mallory, bob = members["mallory"], members["bob"]
    url = labelstudio.url

    # What Mallory's token reads: every webhook with its secret, every project and task,
    # other people's annotations.
    secret = _read_secret(mallory, url, project)
    bobs = {
        key: bob.client(url).create_annotation(task, _label("safe"))
        for key, task in project.tasks.items()
    }
    with mallory.http(url) as http:
        assert http.get(f"/api/projects/{project.labelstudio_id}/").status_code == 200
        seen = http.get(f"/api/annotations/{bobs['i0'].id}/")
        assert seen.status_code == 200 and seen.json()["completed_by"] == bob.id

        # Forged and replayed notices, and annotations Label Studio holds but no
        # annotator made in the labeling interface.
        fake = LabelStudioAnnotation(
            bobs["i2"].id + 500,
            project.tasks["i2"],
            bob.id,
            _label("MAYBE"),
            False,
            bobs["i2"].created_at,
            bobs["i2"].updated_at,
        )
        assert _post_notice(receiver, secret, _notice("ANNOTATION_CREATED", fake))["created"] == 0
        http.post(
            f"/api/tasks/{project.tasks['i1']}/annotations/",
            json={"result": _label("unsafe"), "completed_by": bob.id},
        ).raise_for_status()
        http.post(
            f"/api/tasks/{project.tasks['i2']}/annotations/", json={"result": _label("MAYBE")}
        ).raise_for_status()

    # Mallory annotates i0 twice: Label Studio holds both, Sabha records both, one vote counts.
    mine = mallory.client(url)
    once = mine.create_annotation(project.tasks["i0"], _label("unsafe"))
    twice = mine.create_annotation(project.tasks["i0"], _label("unsafe"))
    _post_notice(receiver, secret, _notice("ANNOTATION_CREATED", once))  # a replay: no change
    fewest = {r.gate: r for r in check_release_gates(db, project_name(db, project), GATES)}
    assert fewest["annotations per item"].actual == 1  # i1 and i2: Bob alone, by the rules

    # A reviewer accepts Mallory's vote through the API; she edits it afterwards.
    with session_scope(db) as session:
        reviewer = create_user(session, "mkaguzi", roles=[Role.REVIEWER])
        _, token = create_access_token(
            session, reviewer, "t", [TokenScope.REVIEW], expires_in_days=30
        )
    api = create_app(webhook_settings(receiver_url(db), labelstudio)).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = api.get(
        "/api/v1/reviews", query_string={"dataset": project_name(db, project)}, headers=headers
    ).json["annotations"]
    ids = {e["annotation_id"]: e for e in listed}
    assert once.id not in ids and twice.id in ids  # her earlier one is no vote
    accepted = api.post(
        f"/api/v1/annotations/{twice.id}/review",
        json={"verdict": "accepted", "version": ids[twice.id]["version"]},
        headers=headers,
    )
    assert accepted.status_code == 201
    mine.update_annotation(twice.id, _label("safe", "weather"))
    again = api.get(
        "/api/v1/reviews", query_string={"dataset": project_name(db, project)}, headers=headers
    ).json["annotations"]
    (back,) = [e for e in again if e["annotation_id"] == twice.id]
    assert back["my_review_outdated"] and back["answer"]["hazard"] == "weather"
    gates = {r.gate: r for r in check_release_gates(db, project_name(db, project), GATES)}
    assert gates["reviewer acceptance"].actual is None  # the edit voided the only review

    # Sabha's records equal Label Studio's truth, through webhooks alone and after a sync.
    truth = _truth(db, admin, project)
    assert _sabha(db, project) == truth
    assert {a for a, _, _ in truth} >= {once.id, twice.id, *(b.id for b in bobs.values())}
    report = sync_project(db, admin, project.id)
    assert (report.created, report.updated, report.deleted, report.refused) == (0, 0, 0, 2)
    assert _sabha(db, project) == truth

    # Two more people on i1 and i2: the gate counts distinct people and passes.
    honest = labelstudio.client(PEOPLE[0])
    for key in ("i1", "i2"):
        honest.create_annotation(project.tasks[key], _label("safe"))
    gates = {r.gate: r for r in check_release_gates(db, project_name(db, project), GATES)}
    assert gates["annotations per item"].actual == 2 and gates["annotations per item"].passed


def project_name(db: Engine, project: Project) -> str:
    with Session(db) as session:
        stored = session.get(AnnotationProject, project.id)
    assert stored is not None
    return stored.dataset_name


def receiver_url(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)
