"""The demo's annotation part: a sample Label Studio project and a demo annotator.

``sabha demo`` starts the local Label Studio, then calls
:func:`set_up_demo_annotation`: a ``qa`` project of a few Hindi questions of
the kisan-advisory starter benchmark, opened in Label Studio, and a Sabha user
``demo-annotator`` (annotator role, Hindi) with a Label Studio account. Both
passwords are new on every run, so the demo can print them; everything else is
reused.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationProject, AnnotationTaskType, Role, SourceItem, User
from sabha.platform.errors import NotFoundError
from sabha.platform.settings import Settings

from ..annotators import (
    join_annotation_project,
    new_labelstudio_password,
    set_annotator_languages,
)
from ..users import create_user, get_user, grant_role, set_password
from .projects import create_annotation_project, provision_project, upload_source_items

__all__ = ["DEMO_ANNOTATOR", "DEMO_DATASET", "DemoAnnotation", "set_up_demo_annotation"]

DEMO_DATASET = "kisan-advisory-community"
DEMO_LANGUAGE = "hi-Deva"
DEMO_ANNOTATOR = "demo-annotator"
_DEMO_ITEMS = 5


@dataclass(frozen=True)
class DemoAnnotation:
    """What the demo prints: where to annotate and the demo annotator's two sign-ins."""

    labelstudio_url: str
    project_url: str
    items: int
    labelstudio_email: str
    labelstudio_password: str
    sabha_username: str
    sabha_password: str


def _starter_questions(n: int) -> list[dict[str, str]]:
    """The first ``n`` Hindi questions of the kisan-advisory starter benchmark, as source rows."""
    text = (
        resources.files("sabha.platform.benchmarks")
        .joinpath("starter", "kisan-advisory.jsonl")
        .read_text("utf-8")
    )
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [
        {"id": row["id"], "question": row["input"]["question"]}
        for row in rows
        if row["language"] == DEMO_LANGUAGE
    ][:n]


def _demo_project(db: Engine) -> tuple[int, int]:
    with Session(db) as session:
        project = session.exec(
            select(AnnotationProject).where(
                AnnotationProject.dataset_name == DEMO_DATASET,
                AnnotationProject.language == DEMO_LANGUAGE,
            )
        ).first()
        items = 0
        if project is not None:
            items = session.exec(
                select(func.count())
                .select_from(SourceItem)
                .where(SourceItem.project_id == project.id)
            ).one()
    if project is None:
        project = create_annotation_project(
            db,
            DEMO_DATASET,
            DEMO_LANGUAGE,
            AnnotationTaskType.QA,
            annotations_per_item=2,
            title="किसान सलाह: उत्तर लिखें (kisan-advisory, demo)",
        )
    if not items:
        with tempfile.TemporaryDirectory(prefix="sabha-demo-") as folder:
            path = Path(folder) / "questions.jsonl"
            path.write_text(
                "".join(
                    json.dumps(r, ensure_ascii=False) + "\n"
                    for r in _starter_questions(_DEMO_ITEMS)
                ),
                "utf-8",
            )
            items = upload_source_items(db, project.id or 0, path)
    return project.id or 0, int(items)


def _demo_user(db: Engine, password: str) -> User:
    with session_scope(db) as session:
        try:
            user = get_user(session, DEMO_ANNOTATOR)
        except NotFoundError:  # the first demo run
            user = create_user(
                session,
                DEMO_ANNOTATOR,
                password=password,
                display_name="Demo annotator",
                roles=[Role.ANNOTATOR],
            )
        else:
            set_password(session, user, password)
            grant_role(session, user, Role.ANNOTATOR)
        session.flush()
        session.expunge(user)
    set_annotator_languages(db, user.id or 0, [DEMO_LANGUAGE])
    return user


def set_up_demo_annotation(
    db: Engine, settings: Settings, client: LabelStudioClient, *, webhook_url: str | None = None
) -> DemoAnnotation:
    """Create (or reuse) the demo project and annotator; give both accounts new passwords.

    Args:
        db: Sabha's database.
        settings: Where the local Label Studio's data dir is, and the webhook secret.
        client: The local Label Studio, with its admin's token.
        webhook_url: Sabha's webhook endpoint, given to the project when it is
            first opened in Label Studio (with ``settings.label_studio_webhook_secret``).
    """
    project_id, items = _demo_project(db)
    ls_project = provision_project(
        db,
        client,
        project_id,
        webhook_url=webhook_url,
        webhook_secret=settings.label_studio_webhook_secret,
    )
    sabha_password = secrets.token_urlsafe(12)
    user = _demo_user(db, sabha_password)
    sign_in = join_annotation_project(db, settings, user, project_id)
    password = sign_in.password or new_labelstudio_password(db, settings, user).password
    assert password is not None
    return DemoAnnotation(
        labelstudio_url=client.url,
        project_url=client.project_url(ls_project),
        items=items,
        labelstudio_email=sign_in.email,
        labelstudio_password=password,
        sabha_username=DEMO_ANNOTATOR,
        sabha_password=sabha_password,
    )
