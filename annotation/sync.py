"""Keep Sabha's copy of Label Studio annotations exact: upserts keyed by Label Studio's id.

Both ways in, a webhook call and a reconciliation pull, end in
``upsert_annotation``: an annotation seen twice is one row, an edited one is
updated in place, so a missed webhook or a restart loses nothing and
duplicates nothing. Reconciliation also removes annotations deleted in Label
Studio while no webhook reached Sabha.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    SourceItem,
    id_of,
    utcnow,
)

from .labelstudio import LabelStudioAnnotation

__all__ = ["SyncReport", "delete_annotations", "reconcile_annotations", "upsert_annotation"]


@dataclass
class SyncReport:
    """What one sync changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    unknown_tasks: int = 0
    # The changed annotations judge model answers: the community scores need refreshing.
    judged: bool = False

    def changed(self) -> bool:
        """Whether the sync created, updated or deleted anything."""
        return bool(self.created or self.updated or self.deleted)

    def add(self, outcome: str) -> None:
        """Count one upsert's outcome (``created``, ``updated``, ``unchanged``...)."""
        setattr(self, outcome, getattr(self, outcome) + 1)


def upsert_annotation(session: Session, annotation: LabelStudioAnnotation) -> str:
    """Insert or update Sabha's row for one Label Studio annotation.

    Returns:
        ``"created"``, ``"updated"``, ``"unchanged"``, or ``"unknown_tasks"``
        when the task is not one Sabha imported (it is then ignored).
    """
    item = session.exec(
        select(SourceItem).where(SourceItem.labelstudio_task_id == annotation.task_id)
    ).first()
    if item is None:
        return "unknown_tasks"
    row = session.exec(
        select(Annotation).where(Annotation.labelstudio_annotation_id == annotation.id)
    ).first()
    if row is None:
        session.add(
            Annotation(
                labelstudio_annotation_id=annotation.id,
                item_id=id_of(item),
                labelstudio_user_id=annotation.user_id,
                result=annotation.result,
                was_cancelled=annotation.was_cancelled,
                created_at=annotation.created_at,
                updated_at=annotation.updated_at,
            )
        )
        session.flush()
        return "created"
    if row.result == annotation.result and row.was_cancelled == annotation.was_cancelled:
        return "unchanged"
    row.result = annotation.result
    row.was_cancelled = annotation.was_cancelled
    row.updated_at = annotation.updated_at
    row.synced_at = utcnow()
    session.add(row)
    session.flush()
    return "updated"


def delete_annotations(session: Session, labelstudio_ids: Iterable[int]) -> int:
    """Remove annotations (and their reviews) deleted in Label Studio; returns how many."""
    ids = list(
        session.exec(
            select(Annotation.id).where(
                col(Annotation.labelstudio_annotation_id).in_(list(labelstudio_ids))
            )
        ).all()
    )
    if not ids:
        return 0
    session.exec(delete(AnnotationReview).where(col(AnnotationReview.annotation_id).in_(ids)))
    session.exec(delete(Annotation).where(col(Annotation.id).in_(ids)))
    return len(ids)


def reconcile_annotations(
    session: Session, project: AnnotationProject, seen: Iterable[LabelStudioAnnotation]
) -> SyncReport:
    """Make the project's annotations exactly ``seen`` (everything Label Studio has now)."""
    report = SyncReport()
    present: set[int] = set()
    for annotation in seen:
        present.add(annotation.id)
        report.add(upsert_annotation(session, annotation))
    stored = session.exec(
        select(Annotation.labelstudio_annotation_id)
        .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
        .where(SourceItem.project_id == id_of(project))
    ).all()
    report.deleted = delete_annotations(session, [i for i in stored if i not in present])
    return report
