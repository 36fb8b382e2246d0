"""Reading annotations back from Label Studio: a whole project, or what a webhook names.

Every item is read from Label Studio with Sabha's own token and Sabha's copy
is made exactly that, checked (``sabha.annotation.sync.reconcile_item``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.labelstudio import (
    LabelStudioClient,
    LabelStudioError,
    LabelStudioNotFound,
)
from sabha.annotation.sync import SyncReport, reconcile_item
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, AnnotationProject, JudgedResponse, SourceItem
from sabha.platform.errors import NotFoundError

from .webhooks import WebhookNotice

__all__ = ["apply_webhook", "sync_project"]


def _refresh_item(
    db: Engine, client: LabelStudioClient, item_id: int, *, max_text_chars: int
) -> SyncReport:
    """Read one item's task from Label Studio and make Sabha's copy exactly that, checked.

    The item's row is locked (PostgreSQL ``FOR UPDATE``; SQLite's write lock)
    before Label Studio is asked, so two refreshes of one task cannot cross:
    the later one reads the later truth and writes last.
    """
    with session_scope(db) as session:
        item = session.exec(
            select(SourceItem).where(SourceItem.id == item_id).with_for_update()
        ).first()
        if item is None or item.labelstudio_task_id is None:
            return SyncReport()
        project = session.get(AnnotationProject, item.project_id)
        assert project is not None  # source items reference projects by foreign key
        try:
            held = client.task_annotations(item.labelstudio_task_id)
        except LabelStudioNotFound:
            if project.labelstudio_project_id is None or not client.has_project(
                project.labelstudio_project_id
            ):
                raise LabelStudioError(
                    f"Label Studio at {client.url} has no project "
                    f"{project.labelstudio_project_id} ({project.title}); nothing was changed.",
                    "Point SABHA_LABEL_STUDIO_URL at the server the project was provisioned on.",
                ) from None
            held = []  # the task was deleted: so were its annotations
        report = reconcile_item(session, project, item, held, max_text_chars=max_text_chars)
        if report.changed():
            report.judged = _judges_answers(
                session, select(SourceItem.id).where(SourceItem.id == item_id)
            )
        return report


def sync_project(
    db: Engine, client: LabelStudioClient, project_id: int, *, max_text_chars: int = 20_000
) -> SyncReport:
    """Read every item of a project back from Label Studio (reconciliation).

    Idempotent: running it again changes nothing; it recovers what missed
    webhooks lost, removes what was deleted in Label Studio meanwhile, and
    refuses (and reports) what Label Studio holds that no annotator could have
    made in the labeling interface.
    """
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
        items = session.exec(
            select(SourceItem.id)
            .where(
                SourceItem.project_id == project_id,
                col(SourceItem.labelstudio_task_id).is_not(None),
            )
            .order_by(col(SourceItem.id))
        ).all()
    report = SyncReport()
    if project.labelstudio_project_id is None:
        return report
    if not client.has_project(project.labelstudio_project_id):
        raise LabelStudioError(
            f"Label Studio at {client.url} has no project {project.labelstudio_project_id} "
            f"({project.title}); nothing was changed.",
            "Point SABHA_LABEL_STUDIO_URL at the server the project was provisioned on.",
        )
    for item_id in items:
        report.merge(_refresh_item(db, client, int(item_id or 0), max_text_chars=max_text_chars))
    return report


def apply_webhook(
    db: Engine,
    client_for: Callable[[bool], LabelStudioClient],
    notice: WebhookNotice,
    *,
    max_text_chars: int = 20_000,
) -> SyncReport:
    """Check what a webhook notice names against Label Studio, and record that.

    ``client_for(private)`` is the Label Studio client of the community
    (False) or the private (True) server: each item is read back from the
    server its project lives on, whichever server sent the notice.

    Only the notice's ids are used, and only to decide which tasks to read
    back: every item whose task it names, or which holds an annotation it
    names, is read from Label Studio with Sabha's own token and reconciled
    (``reconcile_item``). What a payload says an annotation contains is never
    recorded, so a forged, replayed or reordered notice changes nothing Label
    Studio does not hold now.

    Raises:
        LabelStudioError: Label Studio could not be read (nothing changed).
    """
    if not notice.annotation_ids:
        return SyncReport()
    task_ids, annotation_ids = list(notice.task_ids), list(notice.annotation_ids)
    with Session(db) as session:
        by_task = dict(
            session.exec(
                select(SourceItem.labelstudio_task_id, SourceItem.id).where(
                    col(SourceItem.labelstudio_task_id).in_(task_ids)
                )
            ).all()
        )
        by_annotation = session.exec(
            select(Annotation.item_id).where(
                col(Annotation.labelstudio_annotation_id).in_(annotation_ids)
            )
        ).all()
        named = sorted({int(i) for i in [*by_task.values(), *by_annotation] if i is not None})
        private = dict(
            session.exec(
                select(SourceItem.id, AnnotationProject.private)
                .join(AnnotationProject, col(AnnotationProject.id) == SourceItem.project_id)
                .where(col(SourceItem.id).in_(named))
            ).all()
        )
    report = SyncReport(unknown_tasks=len(set(task_ids) - set(by_task)))
    for item_id in named:
        client = client_for(bool(private.get(item_id, False)))
        report.merge(_refresh_item(db, client, item_id, max_text_chars=max_text_chars))
    return report


def _judges_answers(session: Session, source_items: Any) -> bool:
    """Whether any of these source items (a subquery of ids) is a judging task."""
    found = session.exec(
        select(JudgedResponse.id).where(col(JudgedResponse.source_item_id).in_(source_items))
    ).first()
    return found is not None
