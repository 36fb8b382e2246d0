"""The webhook endpoint's bounds: body size, ids, JSON depth; a notice Label Studio cannot back.

No Label Studio runs here: everything below is refused before Sabha would
read a task back (or, for a well-formed notice, Sabha cannot read it back and
changes nothing). The read-back itself is tested against a real Label Studio
in ``test_annotation_hostile.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from annotationtools import label, label_project
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.platform.domain import Annotation

SECRET = "webhook-secret-for-bounds"
HEADERS = {"X-Sabha-Webhook-Secret": SECRET, "Content-Type": "application/json"}
WEBHOOK_MAX_BYTES = 1024 * 1024  # platform/web/labelstudio_hooks.py


@pytest.fixture
def hook(db: Engine, tmp_path: Path) -> Any:
    from webtools import make_web_app

    label_project(db, tmp_path, "bounds", "sw-Latn", ["i0"], 5)  # task 5 is Sabha's
    return make_web_app(db, tmp_path, label_studio_webhook_secret=SECRET).test_client()


def _created(annotation_id: Any = 7, task: Any = 5, **extra: Any) -> dict[str, Any]:
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": {
            "id": annotation_id,
            "task": task,
            "completed_by": 3,
            "result": label("unsafe"),
            **extra,
        },
    }


def _stored(db: Engine) -> list[Annotation]:
    with Session(db) as session:
        return list(session.exec(select(Annotation)).all())


def test_a_webhook_body_over_the_limit_is_refused_with_413(db: Engine, hook: Any) -> None:
    text = "x" * (WEBHOOK_MAX_BYTES + 10)
    payload = _created(result=[{"from_name": "safety", "value": {"text": [text]}}])
    answer = hook.post("/hooks/labelstudio", data=json.dumps(payload), headers=HEADERS)
    assert answer.status_code == 413 and "at most 1048576 bytes" in answer.json["error"]
    assert _stored(db) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_created(annotation_id=2**70), "annotation.id"),
        (_created(annotation_id=2**31), "annotation.id"),
        (_created(annotation_id=0), "annotation.id"),
        (_created(annotation_id=True), "annotation.id"),
        (_created(annotation_id="7"), "annotation.id"),
        (_created(task=2**63), "annotation.task"),
        ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": -1}]}, "[1].id"),
        ({"action": "ANNOTATION_UPDATED", "annotation": "7"}, "is not an object"),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": n} for n in range(1, 1002)]},
            "more than 1000",
        ),
    ],
)
def test_webhook_ids_outside_the_database_range_are_refused_with_422(
    db: Engine, hook: Any, payload: dict[str, Any], field: str
) -> None:
    answer = hook.post("/hooks/labelstudio", json=payload, headers=HEADERS)
    assert answer.status_code == 422, answer.text
    assert field in answer.json["error"]
    assert _stored(db) == []


def test_a_webhook_body_that_is_not_json_or_nested_too_deeply_is_refused_with_400(
    hook: Any,
) -> None:
    for body in ("[" * 100_000, "nonsense", '{"action": '):
        answer = hook.post("/hooks/labelstudio", data=body, headers=HEADERS)
        assert answer.status_code == 400, answer.text[:200]


def test_a_notice_sabha_cannot_read_back_changes_nothing(db: Engine, hook: Any) -> None:
    """No Label Studio to read the task back from: 503, and the payload is never recorded."""
    answer = hook.post("/hooks/labelstudio", json=_created(), headers=HEADERS)
    assert answer.status_code == 503
    assert "cannot read the annotations back" in answer.json["error"]
    assert _stored(db) == []
    other = hook.post("/hooks/labelstudio", json={"action": "PROJECT_UPDATED"}, headers=HEADERS)
    assert other.status_code == 200 and other.json["created"] == 0
