"""Helpers for tests of Sabha's own annotation records: projects and annotations in the database.

Annotations are stored as the sync stores what Label Studio holds
(``upsert_annotation``); the tests that need a real Label Studio use
``labelstudio_fixture`` instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.configs import LabelingOptions
from sabha.annotation.labelstudio import LabelStudioAnnotation
from sabha.annotation.sync import upsert_annotation
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, SourceItem, User
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import create_annotation_project, upload_source_items

START = datetime(2026, 11, 26, tzinfo=UTC)
PASSWORD = "a long password 123"


def label(safety: str, hazard: str = "fire") -> list[dict[str, Any]]:
    """A label task's result as Label Studio stores it."""
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


def label_project(
    db: Engine, tmp_path: Path, dataset: str, language: str, keys: list[str], first_task: int
) -> dict[str, int]:
    """A label project whose items ``keys`` are tasks ``first_task``, ``first_task + 1``...

    Returns:
        Item key -> Label Studio task id.
    """
    project = create_annotation_project(
        db, dataset, language, "label", options=LabelingOptions(hazards=("fire",))
    )
    path = tmp_path / f"{dataset}-{language}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "text": f"maandishi {k}"}) + "\n" for k in keys))
    upload_source_items(db, project.id or 0, path)
    tasks = {}
    with session_scope(db) as session:
        items = session.exec(select(SourceItem).where(SourceItem.project_id == project.id)).all()
        for item in items:
            item.labelstudio_task_id = first_task + keys.index(item.key)
            tasks[item.key] = item.labelstudio_task_id
            session.add(item)
    return tasks


def annotate(
    db: Engine,
    annotation_id: int,
    task_id: int,
    user: int,
    result: list[dict[str, Any]],
    minutes: int = 0,
) -> None:
    """Store (or change) Label Studio annotation ``annotation_id`` as of ``minutes`` after START."""
    moment = START + timedelta(minutes=minutes)
    with session_scope(db) as session:
        upsert_annotation(
            session,
            LabelStudioAnnotation(annotation_id, task_id, user, result, False, moment, moment),
        )


def person(db: Engine, name: str, roles: tuple[str, ...]) -> User:
    """A Sabha user with a password and ``roles``."""
    with session_scope(db) as session:
        return create_user(session, name, password=PASSWORD, roles=roles)


def version_of(db: Engine, annotation_id: int) -> str:
    """The version of an annotation as Sabha holds it now (what a reviewer is shown)."""
    from sabha.annotation.votes import annotation_version

    with Session(db) as session:
        stored = session.exec(
            select(Annotation).where(Annotation.labelstudio_annotation_id == annotation_id)
        ).one()
    return annotation_version(stored.result)
